// The experiments dashboard (admin token): A/B results with rates, intervals, lift, p-values,
// chance to beat control and SRM warnings; per bandit and context, each arm's prior (the warm
// start) apart from its data, the posterior mean, interval and probability best, and the
// posterior history the server records.

import { useEffect, useRef, useState } from 'preact/hooks';

import { api, ApiError, errorText } from './api';
import { Chart, PALETTE } from './charts';

const TOKEN_KEY = 'chorus.admin';

interface Arm {
  name: string;
  prior: { alpha: number; beta: number; mean: number };
  pulls: number;
  rewards: number;
  failures: number;
  pending: number;
  mean: number;
  interval95: [number, number];
  probability_best: number;
}
interface BanditContext {
  context: string;
  arms: Arm[];
  regret_estimate: number;
}
interface Bandit {
  bandit: string;
  enabled: boolean;
  prior_weight: number;
  contexts: BanditContext[];
}
interface HistoryPoint {
  at: number;
  arm: string;
  mean: number;
}

/// What each context means, for the tab's title.
const CONTEXT_HELP: Record<string, string> = {
  cold: 'listeners with 1–2 likes',
  few: 'listeners with 3–9 likes',
  many: 'listeners with 10 or more likes',
  small: 'rooms of 1–2 members',
  medium: 'rooms of 3–4 members',
  large: 'rooms of 5 or more',
};
interface Experiment {
  id: string;
  name: string;
  status: string;
  primary_metric: string;
  created_at: number;
}
interface Row {
  name: string;
  trials: number;
  successes: number;
  is_control: boolean;
  rate: number;
  rate_ci95: [number, number];
  diff?: number | null;
  relative_lift?: number | null;
  relative_lift_ci95?: [number, number] | null;
  p_value?: number | null;
  holm_p_value?: number | null;
  chance_to_beat_control?: number | null;
}
interface AbReport {
  experiment: Experiment;
  variants: { name: string; strategy: string; listeners: number; exposures: number }[];
  /// Null until every variant has a listener.
  primary: { variants: Row[]; chi_square: { p_value: number }; srm: { p_value: number; mismatch: boolean } } | null;
  srm_warning: boolean;
  warnings: string[];
}

const pct = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined ? '—' : `${(x * 100).toFixed(digits)}%`;
const pValue = (p: number | null | undefined) =>
  p === null || p === undefined ? '—' : p < 0.0001 ? '< 0.0001' : p.toFixed(4);

export function Dashboard() {
  const [token, setToken] = useState(() => sessionStorage.getItem(TOKEN_KEY) ?? '');
  const [draft, setDraft] = useState('');
  const [error, setError] = useState('');
  if (!token) {
    const submit = (e: Event) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, draft.trim());
      setToken(draft.trim());
    };
    return (
      <form class="card narrow" onSubmit={submit}>
        <h2>Experiments</h2>
        <p class="muted">Results are for experimenters. Enter the admin token (CHORUS_ADMIN_TOKEN).</p>
        <label for="admin-token">Admin token</label>
        <input id="admin-token" type="password" value={draft} required autoFocus
          onInput={(e) => setDraft((e.target as HTMLInputElement).value)} />
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={!draft.trim()}>Open the dashboard</button>
      </form>
    );
  }
  const rejected = (message: string) => {
    sessionStorage.removeItem(TOKEN_KEY);
    setError(message);
    setToken('');
  };
  return (
    <div class="dashboard">
      <header class="room-header">
        <div>
          <h1>Experiments</h1>
          <p class="muted">A/B tests and the strategy bandits, live.</p>
        </div>
        <div class="actions">
          <button class="quiet" onClick={() => rejected('')}>Forget token</button>
        </div>
      </header>
      <AbSection token={token} onRejected={rejected} />
      <BanditSection token={token} onRejected={rejected} />
    </div>
  );
}

function usePoll<T>(load: () => Promise<T>, every: number, deps: unknown[]) {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    const tick = async () => {
      try {
        const v = await load();
        if (live) {
          setValue(v);
          setError(null);
        }
      } catch (err) {
        if (live) setError(err);
      }
    };
    void tick();
    const timer = window.setInterval(tick, every);
    return () => {
      live = false;
      window.clearInterval(timer);
    };
  }, deps);
  return { value, error };
}

function AbSection(props: { token: string; onRejected: (m: string) => void }) {
  const { token } = props;
  const experiments = usePoll(
    () => api<{ items: Experiment[] }>('GET', '/api/v1/experiments', { token }),
    10_000,
    [token],
  );
  const [chosen, setChosen] = useState('');
  const items = experiments.value?.items ?? [];
  const id = chosen || items.find((e) => e.status === 'running')?.id || items[0]?.id || '';
  const report = usePoll(
    () => (id ? api<AbReport>('GET', `/api/v1/analytics/ab/${id}`, { token }) : Promise.resolve(null)),
    5_000,
    [token, id],
  );
  const err = experiments.error ?? report.error;
  useEffect(() => {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) props.onRejected(err.message);
  }, [err]);
  return (
    <section class="card" aria-labelledby="ab-title">
      <h2 id="ab-title">A/B tests</h2>
      {err ? <p class="error" role="alert">{errorText(err)}</p> : null}
      {!experiments.value && !err && <p class="empty" aria-busy="true">Loading experiments…</p>}
      {experiments.value && items.length === 0 && (
        <p class="empty">No experiments yet. Create one with POST /api/v1/experiments (see the README).</p>
      )}
      {items.length > 0 && (
        <>
          <label for="experiment">Experiment</label>
          <select id="experiment" value={id} onChange={(e) => setChosen((e.target as HTMLSelectElement).value)}>
            {items.map((e) => (
              <option value={e.id}>{e.name} ({e.status})</option>
            ))}
          </select>
        </>
      )}
      {report.value && <AbTable report={report.value} />}
    </section>
  );
}

function AbTable(props: { report: AbReport }) {
  const { report } = props;
  const byName = new Map(report.variants.map((v) => [v.name, v]));
  if (!report.primary) {
    return (
      <div class="report" data-testid="ab-report" data-ready="false">
        {report.warnings.map((w) => (
          <p class="notice">{w}</p>
        ))}
        <ul class="plain">
          {report.variants.map((v) => (
            <li data-waiting-variant={v.name}>
              <strong>{v.name}</strong> ({v.strategy}): {v.listeners} listener{v.listeners === 1 ? '' : 's'}, {v.exposures} list{v.exposures === 1 ? '' : 's'} shown
            </li>
          ))}
        </ul>
      </div>
    );
  }
  const primary = report.primary;
  return (
    <div class="report" data-testid="ab-report">
      {report.srm_warning && (
        <p class="warning" role="alert">
          Sample ratio mismatch (p = {pValue(primary.srm.p_value)}): listeners are not split as configured, so the comparison may be biased. Check assignment before trusting these numbers.
        </p>
      )}
      {report.warnings.map((w) => (
        <p class="notice">{w}</p>
      ))}
      <div class="table-wrap">
        <table>
          <caption>{report.experiment.primary_metric.replace('_', ' ')} per listener, against the control</caption>
          <thead>
            <tr>
              <th scope="col">Variant</th>
              <th scope="col">Listeners</th>
              <th scope="col">Rate</th>
              <th scope="col">95% CI</th>
              <th scope="col">Lift</th>
              <th scope="col">Lift 95% CI</th>
              <th scope="col">p-value</th>
              <th scope="col">Holm p</th>
              <th scope="col">P(beats control)</th>
            </tr>
          </thead>
          <tbody>
            {primary.variants.map((row) => (
              <tr data-variant={row.name}>
                <th scope="row">
                  {row.name}
                  {row.is_control && <span class="badge">control</span>}
                  <span class="muted small"> {byName.get(row.name)?.strategy}</span>
                </th>
                <td data-col="trials">{row.trials}</td>
                <td data-col="rate">{pct(row.rate, 2)}</td>
                <td>{pct(row.rate_ci95[0], 2)} – {pct(row.rate_ci95[1], 2)}</td>
                <td data-col="lift">{pct(row.relative_lift)}</td>
                <td>{row.relative_lift_ci95 ? `${pct(row.relative_lift_ci95[0])} – ${pct(row.relative_lift_ci95[1])}` : '—'}</td>
                <td data-col="p">{pValue(row.p_value)}</td>
                <td>{pValue(row.holm_p_value)}</td>
                <td data-col="ctb">{pct(row.chance_to_beat_control)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="muted small">Omnibus chi-square p = {pValue(primary.chi_square.p_value)}.</p>
    </div>
  );
}

function BanditSection(props: { token: string; onRejected: (m: string) => void }) {
  const { token } = props;
  const bandits = usePoll(() => api<{ bandits: Bandit[] }>('GET', '/api/v1/analytics/bandit', { token }), 3_000, [token]);
  useEffect(() => {
    const err = bandits.error;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) props.onRejected(err.message);
  }, [bandits.error]);
  return (
    <section class="card" aria-labelledby="bandit-title">
      <h2 id="bandit-title">Strategy bandits</h2>
      <p class="muted small">
        Each context has its own posterior. Arms start from a prior taken from the offline evaluation (worth{' '}
        {bandits.value?.bandits[0]?.prior_weight ?? '…'} lists); live likes and adds move them from there.
      </p>
      {bandits.error ? <p class="error" role="alert">{errorText(bandits.error)}</p> : null}
      {!bandits.value && !bandits.error && <p class="empty" aria-busy="true">Loading bandits…</p>}
      {bandits.value?.bandits.map((b) => <BanditPanel bandit={b} token={token} />)}
    </section>
  );
}

function BanditPanel(props: { bandit: Bandit; token: string }) {
  const b = props.bandit;
  const busiest = [...b.contexts].sort(
    (x, y) => y.arms.reduce((n, a) => n + a.pulls, 0) - x.arms.reduce((n, a) => n + a.pulls, 0),
  )[0];
  const [chosen, setChosen] = useState<string | null>(null);
  const shown = b.contexts.find((c) => c.context === chosen) ?? busiest;
  if (!shown) return null;
  const pulls = shown.arms.reduce((n, a) => n + a.pulls, 0);
  return (
    <div class="bandit" data-bandit={b.bandit} data-context={shown.context}>
      <h3>
        {b.bandit.replace('_', ' ')} {!b.enabled && <span class="badge">off</span>}
      </h3>
      <div class="tabs" role="tablist" aria-label={`${b.bandit.replace('_', ' ')} contexts`}>
        {b.contexts.map((c) => (
          <button
            type="button"
            role="tab"
            aria-selected={c.context === shown.context}
            data-context-tab={c.context}
            title={CONTEXT_HELP[c.context]}
            onClick={() => setChosen(c.context)}
          >
            {c.context} <span class="muted small">({c.arms.reduce((n, a) => n + a.pulls, 0)})</span>
          </button>
        ))}
      </div>
      <p class="muted small">
        {CONTEXT_HELP[shown.context] ?? shown.context}: {pulls} lists shown
        {pulls === 0 ? ' — the prior alone decides for now.' : '.'}
      </p>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Arm</th>
              <th scope="col">Prior mean</th>
              <th scope="col">Pulls</th>
              <th scope="col">Rewards</th>
              <th scope="col">Pending</th>
              <th scope="col">Posterior mean</th>
              <th scope="col">95% interval</th>
              <th scope="col">P(best)</th>
            </tr>
          </thead>
          <tbody>
            {shown.arms.map((a) => (
              <tr data-arm={a.name}>
                <th scope="row">{a.name}</th>
                <td data-col="prior" title={`Beta(${a.prior.alpha.toFixed(1)}, ${a.prior.beta.toFixed(1)})`}>
                  {pct(a.prior.mean, 2)}
                </td>
                <td data-col="pulls">{a.pulls}</td>
                <td>{a.rewards}</td>
                <td>{a.pending}</td>
                <td data-col="mean">{pct(a.mean, 2)}</td>
                <td>{pct(a.interval95[0], 1)} – {pct(a.interval95[1], 1)}</td>
                <td data-col="best">{pct(a.probability_best)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <HistoryChart
        token={props.token}
        bandit={b.bandit}
        context={shown.context}
        arms={shown.arms.map((a) => a.name)}
      />
    </div>
  );
}

function HistoryChart(props: { token: string; bandit: string; context: string; arms: string[] }) {
  const { token, bandit, context } = props;
  const history = usePoll(
    () =>
      api<{ points: HistoryPoint[] }>(
        'GET',
        `/api/v1/analytics/bandit/history?bandit=${bandit}&context=${context}&limit=2000`,
        { token },
      ),
    15_000,
    [token, bandit, context],
  );
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  const points = history.value?.points ?? [];
  const times = [...new Set(points.map((p) => p.at))].sort((x, y) => x - y);
  useEffect(() => {
    if (!canvas.current || times.length === 0) return;
    const labels = times.map((t) => new Date(t).toLocaleString());
    // Each arm's mean at each instant: the last recorded value so far (arms are recorded when
    // they change).
    const datasets = props.arms.map((arm, i) => {
      let last: number | null = null;
      const byTime = new Map(points.filter((p) => p.arm === arm).map((p) => [p.at, p.mean]));
      return {
        label: arm,
        data: times.map((t) => (last = byTime.get(t) ?? last)),
        borderColor: PALETTE[i % PALETTE.length],
        backgroundColor: PALETTE[i % PALETTE.length],
        // Dots while there are few points, so a short history is visible.
        pointRadius: times.length < 20 ? 3 : 0,
        tension: 0.25,
      };
    });
    if (chart.current) {
      chart.current.data.labels = labels;
      chart.current.data.datasets = datasets;
      chart.current.update('none');
    } else {
      chart.current = new Chart(canvas.current, {
        type: 'line',
        data: { labels, datasets },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { y: { min: 0, ticks: { callback: (v) => `${(Number(v) * 100).toFixed(0)}%` } } },
          plugins: { legend: { position: 'bottom' } },
        },
      });
    }
  }, [history.value, props.arms.join()]);
  useEffect(
    () => () => {
      chart.current?.destroy();
      chart.current = null;
    },
    [bandit, context],
  );
  if (history.error) return <p class="error" role="alert">{errorText(history.error)}</p>;
  if (!history.value) return <p class="empty" aria-busy="true">Loading the history…</p>;
  if (times.length === 0) {
    return (
      <p class="empty" data-testid="no-history">
        No history for this context yet: the server records the posteriors every minute while lists are shown.
      </p>
    );
  }
  return (
    <figure class="over-time" data-testid="bandit-history">
      <div class="chart wide">
        <canvas
          ref={canvas}
          role="img"
          aria-label={`Posterior mean of each ${bandit.replace('_', ' ')} arm for ${context}, as the server recorded it`}
        />
      </div>
      <figcaption class="muted small">
        Posterior means as the server recorded them ({times.length} {times.length === 1 ? 'point' : 'points'} since{' '}
        {new Date(times[0]).toLocaleDateString()}).
      </figcaption>
    </figure>
  );
}
