import { useEffect, useState, type FormEvent } from "react";
import { apiKey, forgetApiKey, onAuth, setApiKey } from "./api";
import { useRoute } from "./router";
import { Link } from "./ui";
import { RunsPage } from "./pages/RunsPage";
import { RunPage } from "./pages/RunPage";
import { SessionsPage } from "./pages/SessionsPage";
import { SessionPage } from "./pages/SessionPage";
import { Dashboard } from "./pages/Dashboard";

function KeyDialog() {
  const [state, setState] = useState({ wanted: false, refused: false });
  const [value, setValue] = useState("");
  useEffect(() => onAuth(setState), []);
  if (!state.wanted) return null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) {
      setApiKey(value);
      setValue("");
    }
  };
  return (
    <div className="backdrop">
      <form className="dialog" role="dialog" aria-label="API key" data-testid="apikey-dialog" onSubmit={submit}>
        <h2>API key</h2>
        <p>This server needs an API key (<code>rlm keys create --tenant NAME</code> makes one). It is kept for this browser tab only.</p>
        {state.refused && (
          <p className="error" data-testid="apikey-error">
            The server refused that key: it is unknown or revoked.
          </p>
        )}
        <input
          type="password"
          autoFocus
          autoComplete="off"
          placeholder="rlm_…"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          data-testid="apikey-input"
        />
        <button type="submit" data-testid="apikey-submit">
          Use this key
        </button>
      </form>
    </div>
  );
}

export function App() {
  const route = useRoute();
  const [hasKey, setHasKey] = useState(() => apiKey() !== null);
  useEffect(() => onAuth(() => setHasKey(apiKey() !== null)), []);
  const active = (page: string) => (route.page.startsWith(page.replace(/s$/, "")) ? "active" : "");
  return (
    <>
      <header className="top">
        <span className="brand">rlm-engine</span>
        <nav>
          <Link to="/runs" testid="nav-runs" className={active("runs")}>
            Runs
          </Link>
          <Link to="/sessions" testid="nav-sessions" className={active("sessions")}>
            Sessions
          </Link>
          <Link to="/dashboard" testid="nav-dashboard" className={active("dashboard")}>
            Dashboard
          </Link>
        </nav>
        <span className="spacer" />
        {hasKey && (
          <button
            className="link"
            data-testid="apikey-forget"
            onClick={() => {
              forgetApiKey();
              location.reload();
            }}
          >
            forget API key
          </button>
        )}
        <a className="link" href="/docs">
          API docs
        </a>
      </header>
      <main>
        {route.page === "runs" && <RunsPage />}
        {route.page === "run" && <RunPage key={route.id} runId={route.id} />}
        {route.page === "sessions" && <SessionsPage />}
        {route.page === "session" && <SessionPage key={route.id} sessionId={route.id} />}
        {route.page === "dashboard" && <Dashboard />}
        {route.page === "missing" && (
          <p>
            No page at <code>{route.path}</code>. <Link to="/runs">See the runs.</Link>
          </p>
        )}
      </main>
      <KeyDialog />
    </>
  );
}
