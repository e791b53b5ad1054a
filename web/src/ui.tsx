// Small pieces every page uses.
import { useEffect, useRef, useState, type MouseEvent, type ReactNode } from "react";
import { ApiError } from "./api";
import { highlight } from "./highlight";
import { navigate } from "./router";

export function Link(props: { to: string; children: ReactNode; testid?: string; className?: string }) {
  const go = (e: MouseEvent) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.to);
  };
  return (
    <a href={props.to} onClick={go} data-testid={props.testid} className={props.className}>
      {props.children}
    </a>
  );
}

export function StatusBadge({ status, testid }: { status: string; testid?: string }) {
  return (
    <span className={`badge s-${status}`} data-testid={testid}>
      {status}
    </span>
  );
}

export function ErrorBanner({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? error.message : String(error);
  const hint = error instanceof ApiError ? error.hint : "";
  return (
    <div className="error" role="alert" data-testid="error-banner">
      {text}
      {hint && <div className="hint">{hint}</div>}
    </div>
  );
}

export function Code({ code, testid }: { code: string; testid?: string }) {
  return (
    <pre className="code" data-testid={testid}>
      {highlight(code).map((t, i) =>
        t.kind === "plain" ? t.text : (
          <span key={i} className={`t-${t.kind}`}>
            {t.text}
          </span>
        ),
      )}
    </pre>
  );
}

/** Long text cut to ``limit`` characters, with a button to show the rest. */
export function Clipped(props: { text: string; limit: number; testid: string; showAllTestid: string; total?: number }) {
  const [all, setAll] = useState(false);
  const cut = !all && props.text.length > props.limit;
  const shown = cut ? props.text.slice(0, props.limit) : props.text;
  const total = Math.max(props.total ?? 0, props.text.length);
  return (
    <div>
      <pre className="output" data-testid={props.testid}>
        {shown || <span className="muted">(no output)</span>}
      </pre>
      {cut && (
        <button className="link" data-testid={props.showAllTestid} onClick={() => setAll(true)}>
          show all {total.toLocaleString()} characters
        </button>
      )}
      {!cut && props.total !== undefined && props.total > props.text.length && (
        <div className="muted">the engine kept {props.text.length.toLocaleString()} of {props.total.toLocaleString()} characters</div>
      )}
    </div>
  );
}

/** Calls ``load`` now and every ``ms`` while the page is open; the latest value and error. */
export function usePoll<T>(load: () => Promise<T>, ms: number, deps: unknown[]): { data: T | null; error: unknown; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const once = async () => {
      try {
        const value = await loadRef.current();
        if (alive) {
          setData(value);
          setError(null);
        }
      } catch (err) {
        if (alive) setError(err);
      }
      if (alive && ms > 0) timer = setTimeout(once, ms);
    };
    void once();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick, ms]);
  return { data, error, reload: () => setTick((t) => t + 1) };
}

export function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now() / 1000);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now() / 1000), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
