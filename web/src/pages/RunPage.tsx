import { useCallback, useEffect, useRef, useState } from "react";
import { download, getJson, sendJson, type ReplayOut, type RunOut } from "../api";
import { cost, runDuration, seconds, tokens } from "../format";
import { RunTree, type RunEvent } from "../runTree";
import { streamEvents, type SseMessage, type StreamState } from "../sse";
import { ErrorBanner, Link, StatusBadge, useNow, usePoll } from "../ui";
import { NodeDetail } from "./NodeDetail";
import { Notebook } from "./Notebook";
import { TreeView } from "./TreeView";

const ACTIVE = new Set(["queued", "running"]);
const RESUMABLE = new Set(["interrupted", "failed", "cancelled"]);

declare global {
  interface Window {
    __rlmTree?: { nodes: number; applied: number; lastSeq: number; batches: number; applyMs: number };
  }
}

/** The tree of a run fed by its event stream; a batch is applied once per animation frame. */
function useRunTree(runId: string, generation: number) {
  const tree = useRef(new RunTree()).current;
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<StreamState>("connecting");

  useEffect(() => {
    let pending: SseMessage[] = [];
    let frame = 0;
    let batches = 0;
    let applyMs = 0; // time spent applying events to the tree (rendering not included)
    const flush = () => {
      frame = 0;
      const batch = pending;
      pending = [];
      const events: Array<{ seq: number; event: RunEvent }> = [];
      for (const m of batch) {
        try {
          events.push({ seq: Number(m.id), event: JSON.parse(m.data) as RunEvent });
        } catch {
          // not an event body: nothing to draw
        }
      }
      const t0 = performance.now();
      tree.applyAll(events);
      applyMs += performance.now() - t0;
      batches += 1;
      window.__rlmTree = { nodes: tree.nodes.size, applied: tree.applied, lastSeq: tree.lastSeq, batches, applyMs };
      setVersion(tree.version);
    };
    const stop = streamEvents(`/v1/runs/${encodeURIComponent(runId)}/events`, {
      after: tree.lastSeq,
      onMessages: (batch) => {
        pending.push(...batch);
        if (!frame) frame = requestAnimationFrame(flush);
      },
      onState: setState,
    });
    return () => {
      stop();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [runId, generation, tree]);
  return { tree, version, state };
}

function Answer({ run, fields }: { run: RunOut; fields: Record<string, unknown> | null }) {
  if (run.answer === null && !fields) return null;
  return (
    <section className="answer">
      <h2>Answer</h2>
      <pre className="answer-text" data-testid="run-answer">
        {run.answer}
      </pre>
      {fields && Object.keys(fields).length > 0 && (
        <table className="grid" data-testid="run-answer-fields">
          <thead>
            <tr>
              <th>Field</th>
              <th>Value</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(fields).map(([k, v]) => (
              <tr key={k} data-testid="run-answer-field" data-field={k}>
                <th>{k}</th>
                <td>{typeof v === "string" ? v : <code>{JSON.stringify(v)}</code>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function RunPage({ runId }: { runId: string }) {
  const [generation, setGeneration] = useState(0);
  const [tab, setTab] = useState<"tree" | "notebook">("tree");
  const [selected, setSelected] = useState<string | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [replay, setReplay] = useState<ReplayOut | null>(null);
  const now = useNow(1000);
  const { data: run, error, reload } = usePoll(() => getJson<RunOut>(`/v1/runs/${encodeURIComponent(runId)}`), 2000, [runId]);
  const { tree, version, state } = useRunTree(runId, generation);

  // A stream that ended while the run goes on again (resumed here or elsewhere) restarts
  // after the last event it applied.
  useEffect(() => {
    if (state === "ended" && run && ACTIVE.has(run.status) && run.last_event_seq > tree.lastSeq) setGeneration((g) => g + 1);
  }, [state, run, tree]);

  const act = useCallback(
    async (what: () => Promise<unknown>) => {
      setBusy(true);
      setActionError(null);
      try {
        await what();
        reload();
      } catch (err) {
        setActionError(err);
      } finally {
        setBusy(false);
      }
    },
    [reload],
  );

  const base = `/v1/runs/${encodeURIComponent(runId)}`;
  const s = tree.summary;
  const status = run?.status ?? "…";
  // The run's record is updated as calls are journaled; the events are ahead of it while
  // the run goes on, so the larger figure is the live one.
  const live = tree.root.total;
  const totalTokens = Math.max(run ? run.usage.input_tokens + run.usage.output_tokens : 0, live.input + live.output);
  const subCalls = Math.max(run?.usage.sub_calls ?? 0, [...tree.nodes.values()].filter((n) => (n.kind === "llm" || n.kind === "rlm" || n.kind === "tool") && n.status !== "queued" && n.status !== "running").length);
  const liveCost = live.calls > 0 && live.unpriced === 0 ? live.cost : null;
  const shownCost = run && run.status !== "running" && run.status !== "queued" ? run.cost_usd : (run?.cost_usd ?? liveCost);
  return (
    <section className="run-page" data-testid="run-page" data-run-id={runId} data-status={status}>
      <div className="crumbs">
        <Link to="/runs">Runs</Link> / <code>{runId}</code>
        {run?.session_id && (
          <>
            {" "}· session <Link to={`/sessions/${encodeURIComponent(run.session_id)}`}>{run.session_id}</Link>
          </>
        )}
      </div>
      <h1 className="run-title">
        <StatusBadge status={status} testid="run-status" /> <span data-testid="run-question">{run?.question ?? s.question}</span>
      </h1>
      <ErrorBanner error={error} />
      <div className="run-bar">
        <div className="totals">
          <span>
            <b data-testid="run-total-tokens">{run ? tokens(totalTokens) : "—"}</b> tokens
          </span>
          <span>
            <b data-testid="run-total-cost">{run ? cost(shownCost) : "—"}</b>
          </span>
          <span>
            <b data-testid="run-total-duration">{run ? seconds(runDuration(run, now)) : "—"}</b>
          </span>
          <span>
            <b data-testid="run-total-iterations">{Math.max(run?.usage.iterations ?? 0, s.iterations)}</b> iterations
          </span>
          <span>
            <b data-testid="run-total-subcalls">{subCalls}</b> sub-calls
          </span>
          <span className="muted">{run?.model}{run && run.sub_model !== run.model ? ` / ${run.sub_model}` : ""}</span>
          {(run?.stop_reason ?? s.stopReason) && (
            <span>
              stop: <b data-testid="run-stop-reason">{run?.stop_reason ?? s.stopReason}</b>
              {(run?.detail || s.detail) && <span className="muted"> ({run?.detail || s.detail})</span>}
            </span>
          )}
        </div>
        <div className="actions">
          <button data-testid="run-action-cancel" disabled={busy || !run || !ACTIVE.has(run.status) || run.cancel_requested} onClick={() => act(() => sendJson("POST", `${base}/cancel`))}>
            {run?.cancel_requested && ACTIVE.has(run.status) ? "Cancelling…" : "Cancel"}
          </button>
          <button
            data-testid="run-action-resume"
            disabled={busy || !run || !RESUMABLE.has(run.status)}
            onClick={() =>
              act(async () => {
                await sendJson("POST", `${base}/resume`, { accept_divergence: false });
                setGeneration((g) => g + 1);
              })
            }
          >
            Resume
          </button>
          <button
            data-testid="run-action-replay"
            title="re-run offline from the journal: no model call, nothing recorded"
            disabled={busy || !run || ACTIVE.has(run.status)}
            onClick={() =>
              act(async () => {
                setReplay(null);
                setReplay(await sendJson<ReplayOut>("POST", `${base}/replay`));
              })
            }
          >
            Replay
          </button>
          {(["ipynb", "jsonl", "md"] as const).map((f) => (
            <button key={f} data-testid={`run-download-${f}`} disabled={!run} onClick={() => act(() => download(`${base}/export?format=${f}`, `${runId}.${f}`))}>
              ⤓ {f}
            </button>
          ))}
        </div>
      </div>
      <ErrorBanner error={actionError} />
      {replay && replay.run_id === runId && (
        <section className={`replay ${replay.matched ? "st-ok" : "st-failed"}`} data-testid="run-replay-result" data-matched={replay.matched} data-stop-reason={replay.stop_reason ?? ""}>
          <b>Offline replay</b>: {replay.matched ? "reproduced the recorded answer" : "did not reproduce the recorded answer"}
          {replay.stop_reason && <> · stop: {replay.stop_reason}{replay.stop_detail ? ` (${replay.stop_detail})` : ""}</>}
          {replay.error && <div className="error">{replay.error}</div>}
          {!replay.matched && replay.answer !== null && <pre className="output" data-testid="run-replay-answer">{replay.answer}</pre>}
        </section>
      )}
      {run && <Answer run={run} fields={s.fields} />}
      <div className="tabs">
        <button className={tab === "tree" ? "on" : ""} data-testid="run-tab-tree" onClick={() => setTab("tree")}>
          Execution tree
        </button>
        <button className={tab === "notebook" ? "on" : ""} data-testid="run-tab-notebook" onClick={() => setTab("notebook")}>
          Notebook
        </button>
        <span className="spacer" />
        <span className={`stream st-${state}`} data-testid="run-stream-state" data-state={state}>
          {state === "live" ? "● live" : state}
        </span>
        <span className="muted" data-testid="run-events-applied" data-count={tree.applied} data-last-seq={tree.lastSeq}>
          {tree.applied.toLocaleString()} events
        </span>
      </div>
      <div className={`run-body${selected ? " with-detail" : ""}`}>
        <div className="run-main">
          {tab === "tree" ? <TreeView tree={tree} version={version} selected={selected} onSelect={setSelected} /> : <Notebook runId={runId} tree={tree} version={version} onSelect={setSelected} />}
        </div>
        {selected && tree.nodes.has(selected) && <NodeDetail runId={runId} tree={tree} nodeId={selected} version={version} onClose={() => setSelected(null)} />}
      </div>
    </section>
  );
}
