import { useState } from "react";
import { getJson, query, type RunOut, type RunPage as Page } from "../api";
import { ErrorBanner, usePoll } from "../ui";
import { RunsTable } from "./RunsTable";

const STATUSES = ["", "queued", "running", "completed", "failed", "interrupted", "cancelled"];

export function RunsPage() {
  const [status, setStatus] = useState("");
  const [session, setSession] = useState("");
  const [text, setText] = useState("");
  const [pages, setPages] = useState(1);
  // The first `pages` pages, polled: statuses change in place while runs go on.
  const { data, error } = usePoll(
    async () => {
      let runs: RunOut[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < pages; i++) {
        const page: Page = await getJson(`/v1/runs${query({ status, session_id: session.trim(), limit: 50, cursor })}`);
        runs = runs.concat(page.runs);
        cursor = page.next_cursor;
        if (!cursor) break;
      }
      return { runs, more: cursor !== null };
    },
    2000,
    [status, session, pages],
  );
  const needle = text.trim().toLowerCase();
  const runs = (data?.runs ?? []).filter((r) => !needle || r.question.toLowerCase().includes(needle) || r.model.toLowerCase().includes(needle));
  return (
    <section data-testid="runs-page">
      <h1>Runs</h1>
      <div className="filters">
        <label>
          Status{" "}
          <select value={status} onChange={(e) => setStatus(e.target.value)} data-testid="runs-filter-status">
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s || "all"}
              </option>
            ))}
          </select>
        </label>
        <label>
          Session <input value={session} placeholder="ses_…" onChange={(e) => setSession(e.target.value)} data-testid="runs-filter-session" />
        </label>
        <label>
          Find <input value={text} placeholder="question or model" onChange={(e) => setText(e.target.value)} data-testid="runs-filter-text" />
        </label>
      </div>
      <ErrorBanner error={error} />
      {data && runs.length === 0 ? (
        <p className="muted" data-testid="runs-empty">
          No run matches. Ask a question in a session to start one.
        </p>
      ) : (
        <RunsTable runs={runs} />
      )}
      {data?.more && (
        <button data-testid="runs-load-more" onClick={() => setPages((p) => p + 1)}>
          Load more
        </button>
      )}
    </section>
  );
}
