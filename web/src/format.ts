// How numbers read in the UI. A cost the server does not know is "unknown", never 0.
export function cost(usd: number | null | undefined, unpriced = 0): string {
  if (usd === null || usd === undefined) return "unknown";
  const text = usd === 0 ? "$0" : usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
  return unpriced > 0 ? `≥ ${text} (+${unpriced} unpriced)` : text;
}

export function tokens(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(n < 10_000_000 ? 2 : 1)}M`;
}

export function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return "—";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function when(unix: number): string {
  const d = new Date(unix * 1000);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/** The duration of a run: to its end, or to now while it goes on. */
export function runDuration(run: { created_at: number; finished_at: number | null; status: string }, now: number): number | null {
  if (run.finished_at !== null) return run.finished_at - run.created_at;
  if (run.status === "running" || run.status === "queued") return now - run.created_at;
  return null;
}

/** At most ``limit`` characters of ``text``, and whether some were left out. */
export function clip(text: string, limit: number): { text: string; clipped: boolean } {
  return text.length <= limit ? { text, clipped: false } : { text: text.slice(0, limit), clipped: true };
}
