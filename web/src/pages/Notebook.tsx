// The run as a notebook: each iteration's root turn with its reasoning (the reply's text,
// fetched once the turn is journaled), then its cells with their outputs.
import { useEffect, useState } from "react";
import { ApiError } from "../api";
import { cellDetail, nodeDetail, storedCell, storedTree } from "../details";
import { iterations, type RunTree, type TreeNode } from "../runTree";
import { seconds, tokens } from "../format";
import { Clipped, Code, ErrorBanner } from "../ui";

const NB_OUTPUT_LIMIT = 5_000;

/** The root turn's reply, fetched when the turn has finished. */
function Reasoning({ runId, turn }: { runId: string; turn: TreeNode }) {
  const [text, setText] = useState<{ id: string; reply: string; truncated: boolean } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const done = turn.status === "ok";
  useEffect(() => {
    if (!done) return;
    let alive = true;
    nodeDetail(runId, turn.id, NB_OUTPUT_LIMIT)
      .then((d) => alive && setText({ id: turn.id, reply: d.response ?? "", truncated: d.truncated }))
      .catch((err) => {
        if (!alive) return;
        // A turn the events show but the journal does not hold has no text to show.
        if (err instanceof ApiError && err.status === 404) setText({ id: turn.id, reply: "", truncated: false });
        else setError(err);
      });
    return () => {
      alive = false;
    };
  }, [runId, turn.id, done]);
  if (!done) return null;
  if (error) return <ErrorBanner error={error} />;
  if (!text || text.id !== turn.id) return <pre className="output muted" data-testid="nb-reasoning-text" data-loaded="false">loading…</pre>;
  return (
    <pre className="output" data-testid="nb-reasoning-text" data-loaded="true" data-truncated={text.truncated}>
      {text.reply}
      {text.truncated ? "…" : ""}
    </pre>
  );
}

/** A cell's output as its event carried it; "show all" reads the whole from the store. */
function CellOutput({ runId, tree, cell }: { runId: string; tree: RunTree; cell: TreeNode }) {
  const [whole, setWhole] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const shown = whole ?? cell.output ?? "";
  const stored = cell.outputChars ?? shown.length;
  const more = whole === null && stored > shown.length;
  const fetchAll = () => {
    storedTree(runId, tree.lastSeq)
      .then((t) => {
        const found = storedCell(t, cell);
        if (!found) throw new Error("the cell is not stored yet");
        return cellDetail(runId, found.artifact_id, 0, Math.max(found.output_chars ?? 0, 1));
      })
      .then((d) => setWhole(d.output))
      .catch(setError);
  };
  return (
    <>
      <Clipped key={shown.length} text={shown} limit={whole === null ? NB_OUTPUT_LIMIT : Math.max(shown.length, 1)} total={cell.outputChars} testid="nb-cell-output" showAllTestid="nb-cell-show-all" />
      {more && (
        <button className="link" data-testid="nb-cell-fetch-all" onClick={fetchAll}>
          read all {stored.toLocaleString()} stored characters
        </button>
      )}
      <ErrorBanner error={error} />
    </>
  );
}

export function Notebook({ runId, tree, version, onSelect }: { runId: string; tree: RunTree; version: number; onSelect: (id: string) => void }) {
  const its = iterations(tree);
  if (its.length === 0) return <p className="muted" data-testid="notebook">No iteration yet.</p>;
  return (
    <div className="notebook" data-testid="notebook" data-version={version}>
      {its.map(({ rlm, it, turn, cells }) => (
        <section key={it.id} className={`nb-iteration st-${it.status}`} data-testid="nb-iteration" data-iteration={it.iteration} data-node-id={rlm.id}>
          <h3>
            Iteration {it.iteration}
            {rlm.id !== "r" && <span className="muted"> of child RLM {rlm.id}</span>}
          </h3>
          <div className="nb-reasoning" data-testid="nb-reasoning">
            {turn ? (
              <>
                <span className={`dot st-${turn.status}`} /> Root turn by <b>{turn.model}</b>: {tokens(turn.own.input)} tokens in, {tokens(turn.own.output)} out
                {turn.responseChars !== undefined && <>, a reply of {turn.responseChars.toLocaleString()} chars</>}
                {turn.latency !== null && <> in {seconds(turn.latency)}</>}.
                {turn.error && <div className="error">{turn.error}</div>}
                <button className="link" onClick={() => onSelect(turn.id)}>details</button>
                <Reasoning runId={runId} turn={turn} />
              </>
            ) : (
              <span className="muted">waiting for the root turn…</span>
            )}
          </div>
          {cells.map((c) => (
            <div key={c.id} className={`nb-cell st-${c.status}`} data-testid="nb-cell" data-node-id={c.id} data-status={c.status}>
              <div className="nb-cell-head">
                <span className={`dot st-${c.status}`} /> {c.label}
                {c.latency !== null && <span className="muted"> · {seconds(c.latency)}</span>}
                {c.children.length > 0 && <span className="muted"> · {c.children.length} sub-call{c.children.length === 1 ? "" : "s"}</span>}
                <button className="link" onClick={() => onSelect(c.id)}>details</button>
              </div>
              {c.instruction && <div className="muted">instruction: {c.instruction}</div>}
              <Code code={c.code ?? ""} testid="nb-cell-code" />
              {c.output !== undefined ? (
                <CellOutput runId={runId} tree={tree} cell={c} />
              ) : (
                <pre className="output muted" data-testid="nb-cell-output">{c.status === "running" ? "running…" : ""}</pre>
              )}
              {c.error && <pre className="error">{c.error}</pre>}
            </div>
          ))}
        </section>
      ))}
    </div>
  );
}
