// The experiments dashboard (admin token): A/B results with rates, intervals, lift, p-values,
// chance to beat control and SRM warnings; bandit arms with posterior means, intervals and
// probability best, plotted over time while the page is open.

import { useEffect, useRef, useState } from 'preact/hooks';

import { api, ApiError, errorText } from './api';
import { Chart, PALETTE } from './charts';

const TOKEN_KEY = 'chorus.admin';

interface Arm {
  name: string;
  pulls: number;
  rewards: number;
  pending: number;
  mean: number;
  interval95: [number, number];
  probability_best: number;
}
interface Bandit {
  bandit: string;
  enabled: boolean;
  arms: Arm[];
  regret_estimate: number;
}
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

interface Point {
  at: string;
  means: Record<string, number>;
}

function BanditSection(props: { token: string; onRejected: (m: string) => void }) {
  const { token } = props;
  const bandits = usePoll(() => api<{ bandits: Bandit[] }>('GET', '/api/v1/analytics/bandit', { token }), 3_000, [token]);
  const [history, setHistory] = useState<Record<string, Point[]>>({});
  useEffect(() => {
    if (!bandits.value) return;
    const at = new Date().toLocaleTimeString();
    setHistory((h) => {
      const next = { ...h };
      for (const b of bandits.value!.bandits) {
        const point = { at, means: Object.fromEntries(b.arms.map((a) => [a.name, a.mean])) };
        next[b.bandit] = [...(h[b.bandit] ?? []), point].slice(-120);
      }
      return next;
    });
  }, [bandits.value]);
  useEffect(() => {
    const err = bandits.error;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) props.onRejected(err.message);
  }, [bandits.error]);
  return (
    <section class="card" aria-labelledby="bandit-title">
      <h2 id="bandit-title">Strategy bandits</h2>
      {bandits.error ? <p class="error" role="alert">{errorText(bandits.error)}</p> : null}
      {!bandits.value && !bandits.error && <p class="empty" aria-busy="true">Loading bandits…</p>}
      {bandits.value?.bandits.map((b) => (
        <div class="bandit" data-bandit={b.bandit}>
          <h3>
            {b.bandit.replace('_', ' ')} {!b.enabled && <span class="badge">off</span>}
          </h3>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Arm</th>
                  <th scope="col">Pulls</th>
                  <th scope="col">Rewards</th>
                  <th scope="col">Posterior mean</th>
                  <th scope="col">95% interval</th>
                  <th scope="col">P(best)</th>
                </tr>
              </thead>
              <tbody>
                {b.arms.map((a) => (
                  <tr data-arm={a.name}>
                    <th scope="row">{a.name}</th>
                    <td data-col="pulls">{a.pulls}</td>
                    <td>{a.rewards}</td>
                    <td data-col="mean">{pct(a.mean, 2)}</td>
                    <td>{pct(a.interval95[0], 1)} – {pct(a.interval95[1], 1)}</td>
                    <td data-col="best">{pct(a.probability_best)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <MeansChart points={history[b.bandit] ?? []} arms={b.arms.map((a) => a.name)} title={b.bandit} />
        </div>
      ))}
    </section>
  );
}

function MeansChart(props: { points: Point[]; arms: string[]; title: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const labels = props.points.map((p) => p.at);
    const datasets = props.arms.map((arm, i) => ({
      label: arm,
      data: props.points.map((p) => p.means[arm] ?? null),
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length],
      pointRadius: 0,
      tension: 0.25,
    }));
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
          scales: { y: { min: 0, ticks: { callback: (v) => `${Math.round(Number(v) * 100)}%` } } },
          plugins: { legend: { position: 'bottom' } },
        },
      });
    }
  }, [props.points, props.arms.join()]);
  useEffect(() => () => chart.current?.destroy(), []);
  return (
    <figure class="over-time">
      <div class="chart wide">
        <canvas ref={canvas} role="img" aria-label={`Posterior mean of each ${props.title} arm over time, since this page opened`} />
      </div>
      <figcaption class="muted small">Posterior means since this page opened (refreshed every 3 s).</figcaption>
    </figure>
  );
}
