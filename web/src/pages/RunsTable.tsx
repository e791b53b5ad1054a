import type { RunOut } from "../api";
import { cost, runDuration, seconds, when } from "../format";
import { Link, StatusBadge, useNow } from "../ui";

export function RunsTable({ runs, testid = "runs-table" }: { runs: RunOut[]; testid?: string }) {
  const now = useNow(1000);
  return (
    <table className="grid" data-testid={testid}>
      <thead>
        <tr>
          <th>Status</th>
          <th>Question</th>
          <th>Model</th>
          <th className="num">Tokens</th>
          <th className="num">Cost</th>
          <th className="num">Duration</th>
          <th>Created</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.run_id} data-testid="run-row" data-run-id={r.run_id} data-status={r.status}>
            <td data-testid="run-row-status">
              <StatusBadge status={r.status} />
            </td>
            <td className="question">
              <Link to={`/runs/${encodeURIComponent(r.run_id)}`} testid="run-row-link">
                {r.question}
              </Link>
            </td>
            <td data-testid="run-row-model">{r.model}</td>
            <td className="num">{(r.usage.input_tokens + r.usage.output_tokens).toLocaleString()}</td>
            <td className="num" data-testid="run-row-cost">
              {cost(r.cost_usd)}
            </td>
            <td className="num" data-testid="run-row-duration">
              {seconds(runDuration(r, now))}
            </td>
            <td className="muted">{when(r.created_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
