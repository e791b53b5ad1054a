// Server-sent events over fetch. EventSource cannot send an Authorization header, so the
// stream is read by hand; a reconnect sends Last-Event-ID, as EventSource would, and the
// server resumes right after it: nothing missed, nothing twice.
import { apiKey, waitForKey } from "./api";

export type SseMessage = { id: string | null; event: string; data: string };

/** The WHATWG event-stream parsing rules the server's stream needs. */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  lastId: string | null = null;

  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf("\n", start);
      if (nl < 0) break;
      let line = this.buffer.slice(start, nl);
      start = nl + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const msg = { id: this.lastId, event: this.event || "message", data: this.data.join("\n") };
      this.data = [];
      this.event = "";
      return msg;
    }
    if (line.startsWith(":")) return null; // a heartbeat comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    return null;
  }
}

export type StreamState = "connecting" | "live" | "reconnecting" | "ended" | "error";

export type StreamOptions = {
  after?: number;
  onMessages: (batch: SseMessage[]) => void;
  onState: (state: StreamState, detail?: string) => void;
  retryMs?: (attempt: number) => number;
};

const backoff = (attempt: number) => Math.min(5000, 250 * 2 ** attempt);

/** Streams ``path`` until the server ends it (the run is over); returns a stop function. */
export function streamEvents(path: string, opts: StreamOptions): () => void {
  const abort = new AbortController();
  let lastId: string | null = opts.after !== undefined && opts.after >= 0 ? String(opts.after) : null;
  const retry = opts.retryMs ?? backoff;

  const run = async () => {
    let attempt = 0;
    while (!abort.signal.aborted) {
      opts.onState(attempt === 0 ? "connecting" : "reconnecting");
      try {
        const key = apiKey();
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        if (key) headers.Authorization = `Bearer ${key}`;
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const reply = await fetch(path, { headers, signal: abort.signal, cache: "no-store" });
        if (reply.status === 401) {
          await waitForKey(key);
          continue;
        }
        if (!reply.ok || !reply.body) {
          // 404 and the like will not get better by retrying
          if (reply.status >= 400 && reply.status < 500) {
            opts.onState("error", `${reply.status}`);
            return;
          }
          throw new Error(`${reply.status}`);
        }
        opts.onState("live");
        attempt = 0;
        const parser = new SseParser();
        parser.lastId = lastId;
        const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const batch = parser.feed(value);
          lastId = parser.lastId;
          if (batch.length) opts.onMessages(batch);
        }
        opts.onState("ended");
        return;
      } catch (err) {
        if (abort.signal.aborted) return;
        opts.onState("reconnecting", String(err));
        await new Promise((r) => setTimeout(r, retry(attempt++)));
      }
    }
  };
  void run();
  return () => abort.abort();
}
