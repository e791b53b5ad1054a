// What one node of the tree did: a call's figures with its journaled prompt and reply, a
// cell's code and stored output. Texts are fetched when the node is opened, cut to a
// limit ("show all" asks again for the whole), so megabytes never travel with the tree.
import { useEffect, useState } from "react";
import { ApiError, type CellDetailOut, type CellOut, type NodeDetailOut, type NodeOut } from "../api";
import { cellDetail, longest, nodeDetail, storedCell, storedTree, TEXT_LIMIT } from "../details";
import { cost, seconds } from "../format";
import type { RunTree, TreeNode } from "../runTree";
import { Code, ErrorBanner } from "../ui";

export const OUTPUT_LIMIT = TEXT_LIMIT;

const CALLS = new Set(["root_turn", "llm", "digest", "capsule", "rlm", "tool"]);

function isFinished(n: TreeNode | undefined): boolean {
  return n ? n.status !== "running" && n.status !== "queued" : false;
}

/** A call node's journaled texts, fetched once it has finished (again with a larger limit). */
function useNodeTexts(runId: string, n: TreeNode | undefined, maxChars: number) {
  const [detail, setDetail] = useState<NodeDetailOut | null>(null);
  const [missing, setMissing] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const finished = isFinished(n);
  const id = n && CALLS.has(n.kind) ? n.id : null;
  useEffect(() => {
    if (id === null || !finished) return;
    let alive = true;
    nodeDetail(runId, id, maxChars)
      .then((d) => {
        if (!alive) return;
        setDetail(d);
        setError(null);
      })
      .catch((err) => {
        if (!alive) return;
        // A node the events show but the journal does not hold: nothing to fetch.
        if (err instanceof ApiError && err.status === 404) setMissing(id);
        else setError(err);
      });
    return () => {
      alive = false;
    };
  }, [runId, id, finished, maxChars]);
  return { detail: detail && detail.node.node_id === id ? detail : null, missing: missing !== null && missing === id, error };
}

/** A cell's stored record and a window of its output, by its artifact id. */
function useCellOutput(runId: string, tree: RunTree, n: TreeNode | undefined, limit: number) {
  const [found, setFound] = useState<{ cell: CellOut; window: CellDetailOut } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const finished = isFinished(n);
  const isCell = n?.kind === "cell";
  const id = n?.id;
  useEffect(() => {
    if (!isCell || !n) return;
    let alive = true;
    setFound(null);
    storedTree(runId, tree.lastSeq)
      .then(async (t) => {
        const cell = storedCell(t, n);
        if (!cell) return;
        const window = await cellDetail(runId, cell.artifact_id, 0, limit);
        if (alive) setFound({ cell, window });
      })
      .then(() => alive && setError(null))
      .catch((err) => alive && setError(err));
    return () => {
      alive = false;
    };
    // refetched once the cell finishes, so the stored output is the final one
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [runId, id, isCell, finished, limit]);
  return { found: found && found.cell.node_id === id ? found : null, error };
}

function Prompt({ n, detail, missing }: { n: TreeNode; detail: NodeDetailOut | null; missing: boolean }) {
  const sized = n.promptChars !== undefined ? ` (${n.promptChars.toLocaleString()} chars)` : "";
  if (detail?.messages) {
    return (
      <div data-testid="node-detail-prompt" data-journaled="messages">
        {detail.messages.map((m, i) => (
          <div key={i} className="message" data-testid="node-detail-message" data-role={m.role} data-chars={m.chars}>
            <div className="muted">
              {m.role} · {m.chars.toLocaleString()} chars
            </div>
            <pre className="output">{m.content}</pre>
          </div>
        ))}
      </div>
    );
  }
  if (detail?.request != null) {
    return (
      <pre className="output" data-testid="node-detail-prompt" data-journaled="text">
        {detail.request}
      </pre>
    );
  }
  return (
    <p className="muted" data-testid="node-detail-prompt" data-journaled="none">
      {detail
        ? `The journal keeps this call's request hash, not its prompt${sized}.`
        : missing
          ? `The journal holds no record of this call${sized}.`
          : isFinished(n)
            ? "loading…"
            : `The prompt is known once the call is journaled${sized}.`}
    </p>
  );
}

function Reply({ n, detail, missing }: { n: TreeNode; detail: NodeDetailOut | null; missing: boolean }) {
  if (detail && detail.response !== null) {
    return (
      <pre className="output" data-testid="node-detail-reply" data-chars={detail.response_chars ?? 0}>
        {detail.response || <span className="muted">(empty)</span>}
      </pre>
    );
  }
  return (
    <p className="muted" data-testid="node-detail-reply">
      {detail || missing ? "No reply was journaled." : isFinished(n) ? "loading…" : "waiting for the reply…"}
    </p>
  );
}

export function NodeDetail({ runId, tree, nodeId, version, onClose }: { runId: string; tree: RunTree; nodeId: string; version: number; onClose: () => void }) {
  const n = tree.nodes.get(nodeId);
  const [maxChars, setMaxChars] = useState(TEXT_LIMIT);
  const [outputLimit, setOutputLimit] = useState(OUTPUT_LIMIT);
  useEffect(() => {
    setMaxChars(TEXT_LIMIT);
    setOutputLimit(OUTPUT_LIMIT);
  }, [nodeId]);
  const texts = useNodeTexts(runId, n, maxChars);
  const cellOut = useCellOutput(runId, tree, n, outputLimit);

  if (!n) return null;
  const u = n.children.length > 0 ? n.total : n.own;
  const detail = texts.detail;
  const stored: NodeOut | null = detail?.node ?? null;
  const cell = cellOut.found?.cell ?? null;
  const window = cellOut.found?.window ?? null;
  const isCall = CALLS.has(n.kind);
  const output = window?.output ?? n.output ?? "";
  const outputChars = window?.output_chars ?? n.outputChars;
  const error = n.error || stored?.error || cell?.error;
  return (
    <aside className="detail" data-testid="node-detail" data-node-id={n.id} data-kind={n.kind} data-version={version}>
      <div className="detail-head">
        <h3>
          {n.label} <span className="muted">{n.id.includes("#") ? "" : n.id}</span>
        </h3>
        <button className="link" data-testid="node-detail-close" onClick={onClose} aria-label="close">
          ✕
        </button>
      </div>
      <table className="kv" data-testid="node-detail-meta">
        <tbody>
          <tr><th>kind</th><td>{n.kind}</td></tr>
          <tr><th>status</th><td>{n.status}</td></tr>
          {n.model && <tr><th>model</th><td>{n.model}</td></tr>}
          {u.calls > 0 && <tr><th>tokens</th><td>{u.input.toLocaleString()} in · {u.output.toLocaleString()} out{u.cached ? ` · ${u.cached.toLocaleString()} cached` : ""}{n.children.length > 0 ? ` (${u.calls} calls)` : ""}</td></tr>}
          {u.calls > 0 && <tr><th>cost</th><td>{u.unpriced === u.calls ? "unknown" : cost(u.cost, u.unpriced)}</td></tr>}
          {n.latency !== null && <tr><th>{n.kind === "cell" ? "duration" : "latency"}</th><td>{seconds(n.latency)}</td></tr>}
          {n.promptChars !== undefined && <tr><th>prompt</th><td>{n.promptChars.toLocaleString()} chars</td></tr>}
          {n.responseChars !== undefined && <tr><th>reply</th><td>{n.responseChars.toLocaleString()} chars</td></tr>}
          {n.resultChars !== undefined && <tr><th>result</th><td>{n.resultChars.toLocaleString()} chars</td></tr>}
          {stored?.meta && Object.entries(stored.meta).map(([k, v]) => <tr key={k}><th>{k}</th><td>{typeof v === "string" ? v : JSON.stringify(v)}</td></tr>)}
        </tbody>
      </table>
      {error && (
        <pre className="error" data-testid="node-detail-error">
          {error}
        </pre>
      )}
      {n.notes.length > 0 && (
        <ul className="notes">
          {n.notes.map((note, i) => <li key={i}>{note}</li>)}
        </ul>
      )}
      {isCall && (
        <>
          <h4>Prompt</h4>
          <Prompt n={n} detail={detail} missing={texts.missing} />
          <h4>Reply</h4>
          <Reply n={n} detail={detail} missing={texts.missing} />
          {detail?.truncated && (
            <button className="link" data-testid="node-detail-texts-show-all" onClick={() => setMaxChars(longest(detail))}>
              show all {longest(detail).toLocaleString()} characters
            </button>
          )}
        </>
      )}
      {n.instruction && (
        <>
          <h4>Instruction</h4>
          <pre className="output" data-testid="node-detail-instruction">{n.instruction}</pre>
        </>
      )}
      {n.kind === "cell" && (
        <>
          <h4>Code</h4>
          <Code code={cell?.code ?? n.code ?? ""} testid="node-detail-code" />
          <h4>Output {outputChars !== undefined && <span className="muted">({outputChars.toLocaleString()} chars)</span>}</h4>
          <pre className="output" data-testid="node-detail-output" data-source={window ? "cell" : "events"}>
            {output.slice(0, outputLimit) || <span className="muted">(no output)</span>}
          </pre>
          {(window ? window.next_offset !== null : output.length > outputLimit) && (
            <button className="link" data-testid="node-detail-show-all" onClick={() => setOutputLimit(Math.max(outputChars ?? 0, output.length, 1))}>
              show all {(outputChars ?? output.length).toLocaleString()} characters
            </button>
          )}
        </>
      )}
      <ErrorBanner error={texts.error ?? cellOut.error} />
    </aside>
  );
}
