import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { apiKey, onAuth, request, setApiKey } from "./api";
import { streamEvents, type SseMessage, type StreamState } from "./sse";

function memoryStorage(): Storage {
  const items = new Map<string, string>();
  return {
    get length() {
      return items.size;
    },
    clear: () => items.clear(),
    getItem: (k) => items.get(k) ?? null,
    key: (i) => [...items.keys()][i] ?? null,
    removeItem: (k) => void items.delete(k),
    setItem: (k, v) => void items.set(k, v),
  };
}

beforeEach(() => {
  vi.stubGlobal("sessionStorage", memoryStorage());
});
afterEach(() => {
  vi.unstubAllGlobals();
});

describe("request", () => {
  it("asks for a key on 401, then retries with it as a bearer token", async () => {
    const seen: Array<string | null> = [];
    vi.stubGlobal("fetch", async (_path: string, init: RequestInit) => {
      const auth = new Headers(init.headers).get("Authorization");
      seen.push(auth);
      return auth === "Bearer rlm_good" ? new Response("{}", { status: 200 }) : new Response("{}", { status: 401 });
    });
    const states: boolean[] = [];
    const stop = onAuth((s) => states.push(s.wanted));
    const reply = request("/v1/stats");
    await vi.waitFor(() => expect(states.at(-1)).toBe(true));
    setApiKey(" rlm_good ");
    expect((await reply).status).toBe(200);
    expect(seen).toEqual([null, "Bearer rlm_good"]);
    expect(apiKey()).toBe("rlm_good");
    expect(states.at(-1)).toBe(false);
    stop();
  });

  it("turns the server's error body into an ApiError with its hint", async () => {
    vi.stubGlobal("fetch", async () =>
      Response.json({ error: { type: "RunNotFoundError", message: "no run with id 'x'", hint: "list the runs" } }, { status: 404 }),
    );
    await expect(request("/v1/runs/x")).rejects.toMatchObject({ status: 404, message: "no run with id 'x'", hint: "list the runs" });
  });
});

describe("streamEvents", () => {
  it("reconnects after a dropped stream with the last id it saw, and stops when the stream ends", async () => {
    const lastIds: Array<string | null> = [];
    const bodies = ["id: 0\nevent: run_started\ndata: {}\n\nid: 1\nevent: iteration_started\ndata: {}\n\n", "id: 2\nevent: run_finished\ndata: {}\n\n"];
    let call = 0;
    vi.stubGlobal("fetch", async (_path: string, init: RequestInit) => {
      lastIds.push(new Headers(init.headers).get("Last-Event-ID"));
      const text = bodies[call++]!;
      const dropped = call === 1;
      let pulls = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulls++ === 0) controller.enqueue(new TextEncoder().encode(text));
          else if (dropped) controller.error(new Error("connection reset"));
          else controller.close();
        },
      });
      return new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } });
    });
    const got: SseMessage[] = [];
    const states: StreamState[] = [];
    streamEvents("/v1/runs/r/events", { onMessages: (b) => got.push(...b), onState: (s) => states.push(s), retryMs: () => 1 });
    await vi.waitFor(() => expect(states.at(-1)).toBe("ended"));
    expect(got.map((m) => m.id)).toEqual(["0", "1", "2"]);
    expect(lastIds).toEqual([null, "1"]);
    expect(states).toContain("reconnecting");
  });
});
