import { useState, type FormEvent } from "react";
import { getJson, sendJson, uploadSession, type SessionOut, type UploadProgress } from "../api";
import { bytes, when } from "../format";
import { navigate } from "../router";
import { ErrorBanner, Link, usePoll } from "../ui";

type Mode = "text" | "file" | "path";

function CreateSession() {
  const [mode, setMode] = useState<Mode>("file");
  const [name, setName] = useState("");
  const [text, setText] = useState("");
  const [path, setPath] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<UploadProgress | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const label = name.trim() || (mode === "file" ? file?.name : mode === "path" ? path.split("/").pop() : "") || "notes";
      let made: SessionOut;
      if (mode === "file") {
        if (!file) throw new Error("choose a file to upload");
        setProgress({ loaded: 0, total: file.size });
        made = await uploadSession(label, file, setProgress);
      } else if (mode === "path") {
        made = await sendJson("POST", "/v1/sessions", { name: label, path: path.trim() });
      } else {
        made = await sendJson("POST", "/v1/sessions", { name: label, context: text });
      }
      navigate(`/sessions/${encodeURIComponent(made.session_id)}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const percent = progress && progress.total > 0 ? Math.round((100 * progress.loaded) / progress.total) : 0;
  return (
    <form className="card" data-testid="session-create-form" onSubmit={submit}>
      <h2>New session</h2>
      <label className="row">
        Name <input value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. app-logs" data-testid="session-name-input" />
      </label>
      <div className="row" role="radiogroup" aria-label="context source">
        {(["file", "text", "path"] as const).map((m) => (
          <label key={m}>
            <input type="radio" name="mode" checked={mode === m} onChange={() => setMode(m)} data-testid={`session-mode-${m}`} />{" "}
            {m === "file" ? "Upload a file" : m === "text" ? "Paste text" : "Server path"}
          </label>
        ))}
      </div>
      {mode === "text" && <textarea rows={8} value={text} onChange={(e) => setText(e.target.value)} placeholder="the context…" data-testid="session-text-input" />}
      {mode === "file" && <input type="file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} data-testid="session-file-input" />}
      {mode === "path" && (
        <input value={path} onChange={(e) => setPath(e.target.value)} placeholder="/data/corpus (under RLM_ALLOWED_PATHS)" data-testid="session-path-input" />
      )}
      {progress && mode === "file" && (
        <div className="progress">
          <progress max={progress.total} value={progress.loaded} data-testid="session-upload-progress" data-percent={percent} />
          <span className="muted">
            {bytes(progress.loaded)} of {bytes(progress.total)} ({percent}%)
          </span>
        </div>
      )}
      {error ? (
        <div data-testid="session-create-error">
          <ErrorBanner error={error} />
        </div>
      ) : null}
      <button type="submit" disabled={busy} data-testid="session-create-submit">
        {busy ? "Creating…" : "Create session"}
      </button>
    </form>
  );
}

export function SessionsPage() {
  const { data, error } = usePoll(() => getJson<{ sessions: SessionOut[] }>("/v1/sessions?limit=200"), 5000, []);
  return (
    <section data-testid="sessions-page">
      <h1>Sessions</h1>
      <div className="two">
        <div>
          <ErrorBanner error={error} />
          {data && data.sessions.length === 0 && <p className="muted">No session yet: create one with a context.</p>}
          <table className="grid" data-testid="sessions-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Id</th>
                <th className="num">Context</th>
                <th className="num">Runs</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {(data?.sessions ?? []).map((s) => (
                <tr key={s.session_id} data-testid="session-row" data-session-id={s.session_id}>
                  <td>
                    <Link to={`/sessions/${encodeURIComponent(s.session_id)}`} testid="session-row-link">
                      {s.name}
                    </Link>
                    {s.filename && <span className="muted"> · {s.filename}</span>}
                  </td>
                  <td>
                    <code>{s.session_id}</code>
                  </td>
                  <td className="num">{bytes(s.context_bytes)}</td>
                  <td className="num">{s.runs}</td>
                  <td className="muted">{when(s.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <CreateSession />
      </div>
    </section>
  );
}
