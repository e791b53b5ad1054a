import { getJson, query, type RunPage, type SessionOut, type StatsOut, type UsageTotals } from "../api";
import { cost, runDuration, seconds, tokens } from "../format";
import { ErrorBanner, Link, StatusBadge, useNow, usePoll } from "../ui";

function groupCost(t: UsageTotals): string {
  // null when any call of the group had no known price: never a smaller figure
  return t.cost_usd === null ? (t.unpriced_calls === t.calls ? "unknown" : `unknown (${t.unpriced_calls} unpriced)`) : cost(t.cost_usd);
}

function DayChart({ days }: { days: Array<[string, UsageTotals]> }) {
  if (days.length === 0) return <p className="muted" data-testid="dash-by-day">No usage yet.</p>;
  const W = 720;
  const H = 180;
  const pad = 28;
  const maxTokens = Math.max(1, ...days.map(([, t]) => t.input_tokens + t.output_tokens));
  const maxCost = Math.max(0, ...days.map(([, t]) => t.cost_usd ?? 0));
  const step = (W - pad * 2) / days.length;
  const bar = Math.max(4, Math.min(48, step * 0.6));
  return (
    <svg className="chart" viewBox={`0 0 ${W} ${H + 36}`} data-testid="dash-by-day" role="img" aria-label="tokens and cost per day">
      <line x1={pad} x2={W - pad} y1={H} y2={H} className="axis" />
      {days.map(([day, t], i) => {
        const total = t.input_tokens + t.output_tokens;
        const h = ((H - 20) * total) / maxTokens;
        const hIn = ((H - 20) * t.input_tokens) / maxTokens;
        const x = pad + i * step + (step - bar) / 2;
        const c = t.cost_usd;
        const cy = c === null || maxCost === 0 ? null : H - ((H - 20) * c) / maxCost;
        return (
          <g key={day} data-testid="dash-day-bar" data-day={day} data-tokens={total}>
            <title>{`${day}: ${total.toLocaleString()} tokens (${t.input_tokens.toLocaleString()} in), ${groupCost(t)}`}</title>
            <rect x={x} y={H - h} width={bar} height={h - hIn} className="bar-out" />
            <rect x={x} y={H - hIn} width={bar} height={hIn} className="bar-in" />
            {cy !== null ? <circle cx={x + bar / 2} cy={cy} r={4} className="cost-dot" /> : <text x={x + bar / 2} y={H - h - 6} className="unknown" textAnchor="middle">?</text>}
            <text x={x + bar / 2} y={H + 14} textAnchor="middle" className="tick">{day.slice(5)}</text>
            <text x={x + bar / 2} y={H + 28} textAnchor="middle" className="tick muted">{tokens(total)}</text>
          </g>
        );
      })}
    </svg>
  );
}

function GroupTable({ rows, label, testid, rowTestid, attr, link, name }: { rows: Array<[string, UsageTotals]>; label: string; testid: string; rowTestid: string; attr: string; link?: (k: string) => string; name?: (k: string) => string }) {
  return (
    <table className="grid" data-testid={testid}>
      <thead>
        <tr>
          <th>{label}</th>
          <th className="num">Calls</th>
          <th className="num">Input</th>
          <th className="num">Output</th>
          <th className="num">Cost</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([k, t]) => (
          <tr key={k} data-testid={rowTestid} {...{ [attr]: k }}>
            <td>{link ? <Link to={link(k)}>{name?.(k) ?? k}</Link> : k}</td>
            <td className="num">{t.calls.toLocaleString()}</td>
            <td className="num">{t.input_tokens.toLocaleString()}</td>
            <td className="num">{t.output_tokens.toLocaleString()}</td>
            <td className="num">{groupCost(t)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Dashboard() {
  const now = useNow(1000);
  const stats = usePoll(() => getJson<StatsOut>("/v1/stats"), 3000, []);
  const inflight = usePoll(
    async () => {
      const [running, queued] = await Promise.all([
        getJson<RunPage>(`/v1/runs${query({ status: "running", limit: 200 })}`),
        getJson<RunPage>(`/v1/runs${query({ status: "queued", limit: 200 })}`),
      ]);
      return [...running.runs, ...queued.runs];
    },
    3000,
    [],
  );
  const sessions = usePoll(() => getJson<{ sessions: SessionOut[] }>("/v1/sessions?limit=200"), 10000, []);
  const names = new Map((sessions.data?.sessions ?? []).map((x) => [x.session_id, x.name]));
  const s = stats.data;
  const byValue = (a: [string, UsageTotals], b: [string, UsageTotals]) => b[1].input_tokens + b[1].output_tokens - (a[1].input_tokens + a[1].output_tokens);
  return (
    <section data-testid="dashboard-page">
      <h1>Dashboard</h1>
      <ErrorBanner error={stats.error ?? inflight.error} />
      {s && (
        <div className="tiles">
          <div className="tile">
            <div className="big" data-testid="dash-total-calls">{s.totals.calls.toLocaleString()}</div>model calls
          </div>
          <div className="tile">
            <div className="big" data-testid="dash-total-tokens">{tokens(s.totals.input_tokens + s.totals.output_tokens)}</div>
            tokens ({tokens(s.totals.input_tokens)} in, {tokens(s.totals.output_tokens)} out)
          </div>
          <div className="tile">
            <div className="big" data-testid="dash-total-cost">{groupCost(s.totals)}</div>cost
          </div>
          <div className="tile">
            <div className="big" data-testid="dash-unpriced">{s.totals.unpriced_calls.toLocaleString()}</div>calls without a known price
          </div>
        </div>
      )}
      <h2>Runs in flight</h2>
      {inflight.data && inflight.data.length === 0 ? (
        <p className="muted" data-testid="dash-inflight-empty">Nothing is running.</p>
      ) : (
        <table className="grid" data-testid="dash-inflight">
          <tbody>
            {(inflight.data ?? []).map((r) => (
              <tr key={r.run_id} data-testid="dash-inflight-row" data-run-id={r.run_id}>
                <td><StatusBadge status={r.status} /></td>
                <td className="question"><Link to={`/runs/${encodeURIComponent(r.run_id)}`}>{r.question}</Link></td>
                <td>{r.model}</td>
                <td className="num">{tokens(r.usage.input_tokens + r.usage.output_tokens)} tokens</td>
                <td className="num">{seconds(runDuration(r, now))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {s && (
        <>
          <h2>By day <span className="muted small">(bars: input ▮ and output ▮ tokens; dots: cost; ? unknown)</span></h2>
          <DayChart days={Object.entries(s.by_day).sort(([a], [b]) => a.localeCompare(b)).slice(-30)} />
          <div className="halves">
            <div>
              <h2>By model</h2>
              <GroupTable rows={Object.entries(s.by_model).sort(byValue)} label="Model" testid="dash-by-model" rowTestid="dash-model-row" attr="data-model" />
            </div>
            <div>
              <h2>By session</h2>
              <GroupTable rows={Object.entries(s.by_session).sort(byValue)} label="Session" testid="dash-by-session" rowTestid="dash-session-row" attr="data-session" link={(k) => `/sessions/${encodeURIComponent(k)}`} name={(k) => (names.has(k) ? `${names.get(k)} · ${k}` : k)} />
            </div>
          </div>
        </>
      )}
    </section>
  );
}
