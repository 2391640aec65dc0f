// Spotify in a room: connect (PKCE sign-in on Spotify's page, then back here), reconnect when
// Spotify no longer accepts the sign-in, the host's device picker, and Save to Spotify.

import { useEffect, useState } from 'preact/hooks';

import { api, errorText, GroupView, Session, SpotifyDevice, SpotifyStatus } from './api';

/// Sends the browser to Spotify's consent page; it comes back to this room.
async function connect(session: Session, groupId: string): Promise<void> {
  const { ticket } = await api<{ ticket: string }>('POST', '/api/v1/ws-ticket', { body: {}, token: session.token });
  const back = encodeURIComponent(`#/group/${groupId}`);
  location.href = `/api/v1/spotify/login?ticket=${encodeURIComponent(ticket)}&return_to=${back}`;
}

export function SpotifyPanel(props: { session: Session; group: GroupView; isHost: boolean }) {
  const { session, group, isHost } = props;
  const [status, setStatus] = useState<SpotifyStatus | null>(null);
  const [devices, setDevices] = useState<SpotifyDevice[] | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [saved, setSaved] = useState<{ url: string; tracks: number; updated: boolean } | null>(null);
  const [imported, setImported] = useState<{ read: number; liked: number; not_in_catalog: number } | null>(null);
  const token = session.token;

  const refresh = async () => {
    try {
      setStatus(await api<SpotifyStatus>('GET', '/api/v1/spotify', { token }));
    } catch (err) {
      setError(errorText(err));
    }
  };
  const loadDevices = async () => {
    setBusy('devices');
    setError('');
    try {
      setDevices((await api<{ devices: SpotifyDevice[] }>('GET', '/api/v1/spotify/devices', { token })).devices);
    } catch (err) {
      setError(errorText(err));
      await refresh();
    } finally {
      setBusy('');
    }
  };
  useEffect(() => { void refresh(); }, [token]);
  useEffect(() => {
    if (status?.state === 'connected' && isHost && devices === null) void loadDevices();
  }, [status?.state, isHost]);

  if (!status || !status.available) return null;
  const run = async (what: string, work: () => Promise<void>) => {
    setBusy(what);
    setError('');
    try {
      await work();
    } catch (err) {
      setError(errorText(err));
      await refresh();
    } finally {
      setBusy('');
    }
  };
  const choose = (deviceId: string) => run('device', async () => {
    await api('PUT', `/api/v1/groups/${group.group_id}/spotify/device`, { body: { device_id: deviceId || null }, token });
  });
  const save = () => run('save', async () => {
    setSaved(await api<{ url: string; tracks: number; updated: boolean }>('POST', `/api/v1/groups/${group.group_id}/spotify/export`, { body: {}, token }));
  });
  const importLibrary = () => run('import', async () => {
    setImported(await api<{ read: number; liked: number; not_in_catalog: number }>('POST', '/api/v1/spotify/import', { body: {}, token }));
  });
  const target = group.playback_target;
  const mine = target?.user_id === session.userId;
  return (
    <section class="card spotify" aria-labelledby="spotify-title" data-testid="spotify" data-state={status.state}>
      <h2 id="spotify-title">Spotify</h2>
      {status.state === 'disconnected' && (
        <>
          <p class="muted small">
            {isHost ? 'Connect Spotify to play the room on your phone, computer or speaker (Premium), and save it as a playlist.'
              : 'Connect Spotify to save this room as a playlist. You do not need it to listen along.'}
          </p>
          <button class="primary" disabled={!!busy} onClick={() => run('connect', () => connect(session, group.group_id))}>Connect Spotify</button>
        </>
      )}
      {status.state === 'reconnect' && (
        <>
          <p class="error" role="alert">Spotify no longer accepts your sign-in (access was removed or it expired).</p>
          <button class="primary" onClick={() => run('connect', () => connect(session, group.group_id))}>Reconnect Spotify</button>
        </>
      )}
      {status.state === 'connected' && (
        <>
          <p class="muted small">Connected as {status.display_name ?? status.spotify_user_id}.</p>
          {isHost && (
            <div class="device-picker">
              <label for="spotify-device">Play the room on</label>
              <select id="spotify-device" value={mine ? target?.device_id : ''} disabled={busy === 'device'}
                onChange={(e) => choose((e.target as HTMLSelectElement).value)}>
                <option value="">This page only (listen along)</option>
                {(devices ?? []).map((d) => <option key={d.id} value={d.id}>{d.name}</option>)}
              </select>
              <button class="link" onClick={loadDevices} disabled={busy === 'devices'}>
                {busy === 'devices' ? 'Looking…' : 'Refresh devices'}
              </button>
              {devices?.length === 0 && <p class="muted small">No devices: open Spotify on a phone, computer or speaker, then refresh.</p>}
            </div>
          )}
          <button onClick={save} disabled={busy === 'save'}>{busy === 'save' ? 'Saving…' : 'Save to Spotify'}</button>
          {status.import_enabled && (
            <div class="import">
              <button class="link" onClick={importLibrary} disabled={busy === 'import' || !!imported}>
                {busy === 'import' ? 'Importing…' : 'Use my Spotify top and saved tracks as likes'}
              </button>
              {imported && (
                <p class="small" role="status" data-testid="imported">
                  {imported.liked} of your {imported.read} tracks are in this catalog and now count as likes
                  {imported.not_in_catalog > 0 ? ` (${imported.not_in_catalog} are not in it)` : ''}.
                </p>
              )}
            </div>
          )}
          {saved && (
            <p class="small" role="status" data-testid="saved">
              {saved.updated ? 'Updated' : 'Saved'} {saved.tracks} tracks · <a href={saved.url} target="_blank" rel="noreferrer">Open in Spotify</a>
            </p>
          )}
        </>
      )}
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}

/// The outcome of a Spotify sign-in, read once from the URL Chorus's callback sent us to.
export function takeSpotifyOutcome(): string {
  const params = new URLSearchParams(location.search);
  const outcome = params.get('spotify');
  if (!outcome) return '';
  history.replaceState(null, '', `${location.pathname}${location.hash}`);
  if (outcome === 'connected') return 'Spotify is connected.';
  if (outcome === 'denied') return 'Spotify was not connected: you declined on Spotify’s page.';
  return `Spotify was not connected: ${params.get('message') ?? 'something went wrong'}.`;
}
