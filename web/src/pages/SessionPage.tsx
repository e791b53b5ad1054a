import { useState, type FormEvent } from "react";
import { getJson, query, sendJson, type MemoryItem, type RunAccepted, type RunPage, type SessionOut } from "../api";
import { bytes, when } from "../format";
import { navigate } from "../router";
import { ErrorBanner, usePoll } from "../ui";
import { RunsTable } from "./RunsTable";

/** A value typed in a memory field: JSON when it parses, else the text itself. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function MemoryRow({ item, base, onChange }: { item: MemoryItem; base: string; onChange: () => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState("");
  const [error, setError] = useState<unknown>(null);
  const url = `${base}/memory/${encodeURIComponent(item.key)}`;
  const run = async (what: () => Promise<unknown>) => {
    try {
      await what();
      setEditing(false);
      setError(null);
      onChange();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <tr data-testid="memory-row" data-key={item.key}>
      <th>
        <code>{item.key}</code>
      </th>
      <td>
        {editing ? (
          <textarea rows={3} value={text} onChange={(e) => setText(e.target.value)} data-testid="memory-value-input" />
        ) : (
          <pre className="inline" data-testid="memory-value">
            {JSON.stringify(item.value, null, 1)}
          </pre>
        )}
        <ErrorBanner error={error} />
      </td>
      <td className="muted">{when(item.updated_at)}</td>
      <td className="row-actions">
        {editing ? (
          <button data-testid="memory-save" onClick={() => run(() => sendJson("PUT", url, { value: parseValue(text) }))}>
            Save
          </button>
        ) : (
          <button
            data-testid="memory-edit"
            onClick={() => {
              setText(JSON.stringify(item.value, null, 2));
              setEditing(true);
            }}
          >
            Edit
          </button>
        )}
        <button data-testid="memory-delete" onClick={() => run(() => sendJson("DELETE", url))}>
          Delete
        </button>
      </td>
    </tr>
  );
}

export function SessionPage({ sessionId }: { sessionId: string }) {
  const base = `/v1/sessions/${encodeURIComponent(sessionId)}`;
  const session = usePoll(() => getJson<SessionOut>(base), 0, [base]);
  const memory = usePoll(() => getJson<{ items: MemoryItem[] }>(`${base}/memory`), 5000, [base]);
  const runs = usePoll(() => getJson<RunPage>(`/v1/runs${query({ session_id: sessionId, limit: 50 })}`), 2000, [sessionId]);
  const [question, setQuestion] = useState("");
  const [model, setModel] = useState("");
  const [askError, setAskError] = useState<unknown>(null);
  const [newKey, setNewKey] = useState("");
  const [newValue, setNewValue] = useState("");
  const [memError, setMemError] = useState<unknown>(null);

  const ask = async (e: FormEvent) => {
    e.preventDefault();
    setAskError(null);
    try {
      const body: Record<string, unknown> = { question: question.trim(), session_id: sessionId };
      if (model.trim()) body.model = model.trim();
      const made = await sendJson<RunAccepted>("POST", "/v1/runs", body);
      navigate(`/runs/${encodeURIComponent(made.run_id)}`);
    } catch (err) {
      setAskError(err);
    }
  };
  const add = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await sendJson("PUT", `${base}/memory/${encodeURIComponent(newKey.trim())}`, { value: parseValue(newValue) });
      setNewKey("");
      setNewValue("");
      setMemError(null);
      memory.reload();
    } catch (err) {
      setMemError(err);
    }
  };
  const remove = async () => {
    if (!confirm("Delete this session and its memory? Its runs stay.")) return;
    try {
      await sendJson("DELETE", base);
      navigate("/sessions");
    } catch (err) {
      setMemError(err);
    }
  };
  const s = session.data;
  return (
    <section data-testid="session-page" data-session-id={sessionId}>
      <h1>
        <span data-testid="session-name">{s?.name ?? sessionId}</span> <code className="muted small">{sessionId}</code>
      </h1>
      <ErrorBanner error={session.error} />
      {s && (
        <p className="muted">
          <span data-testid="session-bytes">{bytes(s.context_bytes)}</span> of context{s.filename ? ` from ${s.filename}` : ""} · created {when(s.created_at)} ·{" "}
          <button className="link" data-testid="session-delete" onClick={remove}>
            delete
          </button>
        </p>
      )}
      <form className="card ask" data-testid="ask-form" onSubmit={ask}>
        <textarea rows={2} value={question} onChange={(e) => setQuestion(e.target.value)} placeholder="Ask a question about this context…" data-testid="ask-question" />
        <div className="row">
          <input value={model} onChange={(e) => setModel(e.target.value)} placeholder="model (the server's default)" data-testid="ask-model" />
          <button type="submit" disabled={!question.trim()} data-testid="ask-submit">
            Ask
          </button>
        </div>
        {askError ? (
          <div data-testid="ask-error">
            <ErrorBanner error={askError} />
          </div>
        ) : null}
      </form>
      <h2>Runs</h2>
      <ErrorBanner error={runs.error} />
      {runs.data && runs.data.runs.length === 0 ? <p className="muted">No run yet.</p> : <RunsTable runs={runs.data?.runs ?? []} testid="session-runs" />}
      <h2>Memory</h2>
      <ErrorBanner error={memory.error ?? memError} />
      {memory.data && memory.data.items.length === 0 && (
        <p className="muted" data-testid="memory-empty">
          The memory is empty.
        </p>
      )}
      <table className="grid" data-testid="memory-table">
        <tbody>
          {(memory.data?.items ?? []).map((item) => (
            <MemoryRow key={`${item.key}@${item.updated_at}`} item={item} base={base} onChange={memory.reload} />
          ))}
        </tbody>
      </table>
      <form className="row memory-add" onSubmit={add}>
        <input value={newKey} onChange={(e) => setNewKey(e.target.value)} placeholder="key" data-testid="memory-new-key" />
        <input value={newValue} onChange={(e) => setNewValue(e.target.value)} placeholder='value (JSON, e.g. {"tone": "terse"})' data-testid="memory-new-value" />
        <button type="submit" disabled={!newKey.trim()} data-testid="memory-add">
          Add
        </button>
      </form>
    </section>
  );
}
