// Solo listening: personal recommendations with like/skip, "which do you prefer?" pairs, and the
// taste profile as a radar of audio features that moves as feedback arrives.

import { useEffect, useRef, useState } from 'preact/hooks';

import { api, Comparison, errorText, Profile, Session, SoloList, Track } from './api';
import { Chart, PALETTE } from './charts';

export function Solo(props: { session: Session }) {
  const { token } = props.session;
  const [list, setList] = useState<SoloList | null>(null);
  const [profile, setProfile] = useState<Profile | null>(null);
  const [pair, setPair] = useState<Comparison | null | 'none'>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const refresh = async () => {
    try {
      const [next, prof, cmp] = await Promise.all([
        api<SoloList>('POST', '/api/v1/recommendations', { body: { limit: 10 }, token }),
        api<Profile>('GET', '/api/v1/me/profile', { token }),
        api<Comparison | undefined>('GET', '/api/v1/comparisons/next', { token }),
      ]);
      setList(next);
      setProfile(prof);
      setPair(cmp ?? 'none');
      setError('');
    } catch (err) {
      setError(errorText(err));
    }
  };
  useEffect(() => {
    void refresh();
  }, [token]);

  const feedback = async (track: Track, kind: 'like' | 'skip') => {
    setBusy(true);
    try {
      await api('POST', '/api/v1/feedback', { body: { track_id: track.id, kind, request_id: list?.request_id }, token });
      await refresh();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const choose = async (winner: 'a' | 'b') => {
    if (!pair || pair === 'none') return;
    setBusy(true);
    try {
      await api('POST', '/api/v1/comparisons', {
        body: { a: pair.a.id, b: pair.b.id, winner: pair[winner].id },
        token,
      });
      await refresh();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="solo">
      <header class="room-header">
        <div>
          <h1>Just for you</h1>
          <p class="muted">Like or skip, and pick between pairs: every answer reshapes your list at once.</p>
        </div>
      </header>
      {error && <p class="error" role="alert">{error}</p>}
      <div class="room-grid">
        <section class="card" aria-labelledby="solo-recs-title" aria-busy={busy}>
          <h2 id="solo-recs-title">Recommended now</h2>
          {!list ? (
            <p class="empty" aria-busy="true">Loading your recommendations…</p>
          ) : (
            <>
              <p class="muted small" data-testid="strategy">
                {list.strategy === 'popular_diverse'
                  ? 'You have no taste on record yet: here is a spread of popular tracks. Like a few to begin.'
                  : `Ranked by ${list.strategy}.`}
              </p>
              <ol class="entries solo-list">
                {list.items.map((item) => (
                  <li class="entry" key={item.track.id} data-track={item.track.id}>
                    <div class="track">
                      <span class="title">{item.track.title}</span>
                      <span class="artist">{item.track.artist}</span>
                      <span class="added">
                        {item.track.genres.join(', ')}
                        {item.because_you_liked && ` · because you liked ${item.because_you_liked.title}`}
                      </span>
                    </div>
                    <div class="votes">
                      <button class="like" disabled={busy} onClick={() => feedback(item.track, 'like')}
                        aria-label={`Like ${item.track.title}`}>♥ Like</button>
                      <button class="quiet" disabled={busy} onClick={() => feedback(item.track, 'skip')}
                        aria-label={`Skip ${item.track.title}`}>Skip</button>
                    </div>
                  </li>
                ))}
              </ol>
            </>
          )}
        </section>
        <aside class="side">
          <section class="card" aria-labelledby="compare-title">
            <h2 id="compare-title">Which do you prefer?</h2>
            {pair === null && <p class="empty">Loading a pair…</p>}
            {pair === 'none' && <p class="empty">No more pairs to ask for now.</p>}
            {pair && pair !== 'none' && (
              <div class="pair">
                {(['a', 'b'] as const).map((side) => (
                  <button class="choice" disabled={busy} onClick={() => choose(side)} data-side={side}>
                    <span class="title">{pair[side].title}</span>
                    <span class="artist">{pair[side].artist}</span>
                  </button>
                ))}
              </div>
            )}
          </section>
          <TasteRadar profile={profile} />
        </aside>
      </div>
    </div>
  );
}

const FEATURE_LABELS: Record<string, string> = {
  danceability: 'Dance',
  energy: 'Energy',
  valence: 'Mood',
  acousticness: 'Acoustic',
  instrumentalness: 'Instrumental',
  speechiness: 'Speech',
  liveness: 'Live',
};

function TasteRadar(props: { profile: Profile | null }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  const features = (props.profile?.audio_features ?? []).filter((f) => f.name in FEATURE_LABELS);
  useEffect(() => {
    if (!canvas.current || features.length === 0) return;
    const labels = features.map((f) => FEATURE_LABELS[f.name]);
    const datasets = [
      { label: 'Your taste', data: features.map((f) => f.yours), borderColor: PALETTE[0], backgroundColor: 'rgba(255,122,89,0.25)', fill: true },
      { label: 'All music', data: features.map((f) => f.catalog), borderColor: PALETTE[1], backgroundColor: 'rgba(90,209,197,0.08)', fill: true },
    ];
    if (chart.current) {
      chart.current.data.labels = labels;
      chart.current.data.datasets.forEach((d, i) => (d.data = datasets[i].data));
      chart.current.update();
    } else {
      chart.current = new Chart(canvas.current, {
        type: 'radar',
        data: { labels, datasets },
        options: {
          animation: { duration: 300 },
          scales: { r: { min: 0, max: 1, ticks: { display: false } } },
          plugins: { legend: { position: 'bottom' } },
        },
      });
    }
  }, [JSON.stringify(features)]);
  useEffect(() => () => chart.current?.destroy(), []);
  const profile = props.profile;
  return (
    <section class="card" aria-labelledby="taste-title">
      <h2 id="taste-title">Your taste</h2>
      {!profile ? (
        <p class="empty">Loading…</p>
      ) : profile.cold_start ? (
        <p class="empty">Like a few tracks and your taste appears here.</p>
      ) : null}
      <div class="chart" hidden={!profile || profile.cold_start}>
        <canvas ref={canvas} role="img" data-testid="taste-radar"
          aria-label={`Radar of your audio-feature taste: ${features.map((f) => `${FEATURE_LABELS[f.name]} ${Math.round(f.yours * 100)}%`).join(', ')}`} />
      </div>
      {profile && profile.top_genres.length > 0 && (
        <p class="muted small" data-testid="top-genres">
          Top genres: {profile.top_genres.slice(0, 3).map((g) => `${g.name} ${Math.round(g.share * 100)}%`).join(' · ')}
        </p>
      )}
    </section>
  );
}
