// The group room: members with presence, the shared playlist (votes, skip votes, host
// controls), search-as-you-type to add tracks, live group recommendations with the harmony
// indicator and streamed "why?" explanations, sharing by link and QR code, and a visible
// reconnect that resumes from the last seq.

import QRCode from 'qrcode';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';

import { Admission, api, Entry, errorText, GroupRecommendations, GroupView, NowPlaying, Played, Session, Track, TrackSummary } from './api';
import { applyEvent, applyPresence, nameOf, playOrder, positionNow } from './groupState';
import { go } from './router';
import { Frame, GroupSocket, SocketStatus } from './socket';
import { SpotifyPanel, takeSpotifyOutcome } from './spotify';

interface Why {
  text: string;
  source?: string;
  done: boolean;
}

export function GroupRoom(props: { session: Session; groupId: string }) {
  const { session, groupId } = props;
  const [group, setGroup] = useState<GroupView | null>(null);
  const [recs, setRecs] = useState<GroupRecommendations | null>(null);
  // The server says the list is a second or more behind the room's changes; cleared by the
  // next list.
  const [recsUpdating, setRecsUpdating] = useState(false);
  const [status, setStatus] = useState<SocketStatus>('connecting');
  const [detail, setDetail] = useState('');
  const [notice, setNotice] = useState(takeSpotifyOutcome);
  const [why, setWhy] = useState<Record<string, Why>>({});
  const [ended, setEnded] = useState('');
  const socket = useRef<GroupSocket | null>(null);

  useEffect(() => {
    const s = new GroupSocket(session.token, groupId, {
      onStatus: (next, text) => {
        setStatus(next);
        setDetail(text ?? '');
        if (next === 'closed' && text) setEnded(text);
      },
      onFrame: (frame: Frame) => {
        switch (frame.type) {
          case 'snapshot': {
            const g = frame.group as GroupView;
            setGroup(g.now_playing ? { ...g, now_playing: { ...g.now_playing, anchor: Date.now() } } : g);
            break;
          }
          case 'event':
            setGroup((g) => (g ? applyEvent(g, frame.event) : g));
            break;
          case 'presence':
            setGroup((g) => (g ? applyPresence(g, frame) : g));
            break;
          case 'playback_status':
            setGroup((g) => (g ? { ...g, playback_issue: frame.issue } : g));
            break;
          case 'recommendations': {
            const { type: _type, ...list } = frame;
            setRecs(list as GroupRecommendations);
            setRecsUpdating(false);
            break;
          }
          case 'recommendations_updating':
            setRecsUpdating(true);
            break;
          case 'explanation_delta':
            setWhy((w) => ({ ...w, [frame.track_id]: { text: (w[frame.track_id]?.done ? '' : w[frame.track_id]?.text ?? '') + frame.text, done: false } }));
            break;
          case 'explanation_done':
            setWhy((w) => ({ ...w, [frame.track_id]: { text: frame.text, source: frame.source, done: true } }));
            break;
          case 'error':
            setNotice(frame.message);
            break;
          case 'left':
            if (frame.reason === 'kicked') {
              setEnded('The host removed you from this group.');
              s.stop();
            } else {
              s.stop();
              go('');
            }
            break;
        }
      },
    });
    socket.current = s;
    s.start();
    return () => s.stop();
  }, [session.token, groupId]);

  useEffect(() => {
    if (!notice) return;
    const t = window.setTimeout(() => setNotice(''), 5000);
    return () => window.clearTimeout(t);
  }, [notice]);

  if (ended) {
    return (
      <div class="card narrow" role="alert">
        <h2>You are not in this room</h2>
        <p>{ended}</p>
        <a class="button primary" href="#/">Back to rooms</a>
      </div>
    );
  }
  if (!group) {
    return (
      <div class="card narrow" aria-busy="true">
        <p>{status === 'reconnecting' ? `Reconnecting… ${detail}` : 'Joining the room…'}</p>
      </div>
    );
  }

  const me = session.userId;
  const isHost = group.host === me;
  const op = (frame: Frame) => socket.current?.op(frame);
  const inPlaylist = new Set(group.playlist.map((e) => e.track.id));
  if (group.now_playing) inPlaylist.add(group.now_playing.entry.track.id);
  const upNext = playOrder(group);
  const explain = (trackId: string) => {
    setWhy((w) => ({ ...w, [trackId]: { text: '', done: false } }));
    socket.current?.request({ type: 'explain', track_id: trackId });
  };

  return (
    <div class="room">
      <ConnectionBanner status={status} detail={detail} />
      {notice && <p class="toast" role="status">{notice}</p>}
      <RoomHeader group={group} isHost={isHost} onLeave={() => { op({ type: 'leave' }); }} />
      <NowPlayingBar group={group} me={me} isHost={isHost} op={op} />
      <div class="room-grid">
        <section class="card playlist" aria-labelledby="playlist-title">
          <h2 id="playlist-title">Up next <span class="count">{group.playlist.length}</span></h2>
          <TrackSearch onAdd={(t) => op({ type: 'add_track', track_id: t.id })} inPlaylist={inPlaylist} />
          {isHost && <QueueSettings group={group} op={op} />}
          {upNext.length === 0 ? (
            <p class="empty">
              {group.settings.auto_fill
                ? 'Chorus is topping up the queue from the room\'s picks…'
                : 'No tracks queued. Search above, or add one of the group\'s recommendations.'}
            </p>
          ) : (
            <ol class="entries">
              {upNext.map((entry, index) => (
                <PlaylistEntry key={entry.entry_id} entry={entry} index={index} order={upNext} group={group} me={me} isHost={isHost} op={op} />
              ))}
            </ol>
          )}
          <History played={group.history ?? []} group={group} me={me} />
        </section>
        <aside class="side">
          <SpotifyPanel session={session} group={group} isHost={isHost} />
          <Members group={group} me={me} isHost={isHost} op={op} />
          <Recommendations recs={recs} updating={recsUpdating} me={me} inPlaylist={inPlaylist} why={why} onExplain={explain}
            onAdd={(t) => op({ type: 'add_track', track_id: t.id })} />
        </aside>
      </div>
    </div>
  );
}

function ConnectionBanner(props: { status: SocketStatus; detail: string }) {
  if (props.status === 'open') return <p class="sr-only" role="status">Connected</p>;
  const text = props.status === 'reconnecting'
    ? 'Connection lost — reconnecting. Your changes will be sent when we are back.'
    : props.status === 'connecting' ? 'Connecting…' : 'Disconnected.';
  return (
    <p class={`banner ${props.status}`} role="status" data-status={props.status} title={props.detail}>
      {text}
    </p>
  );
}

function RoomHeader(props: { group: GroupView; isHost: boolean; onLeave: () => void }) {
  const { group } = props;
  const link = `${location.origin}/#/join/${group.join_code}`;
  const [qr, setQr] = useState('');
  const [copied, setCopied] = useState(false);
  const [showQr, setShowQr] = useState(false);
  useEffect(() => {
    QRCode.toDataURL(link, { margin: 1, width: 176, color: { dark: '#16131f', light: '#ffffff' } })
      .then(setQr)
      .catch(() => setQr(''));
  }, [link]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
      window.setTimeout(() => setCopied(false), 2000);
    } catch {
      setShowQr(true);
    }
  };
  return (
    <header class="room-header">
      <div>
        <h1>{group.name}</h1>
        <p class="muted">
          Code <strong class="code" data-testid="join-code">{group.join_code}</strong> ·{' '}
          {group.settings.aggregation.replace('_', ' ')} picks · {ADMISSION_TEXT[group.settings.admission ?? 'open']}
          {props.isHost ? ' · you are the host' : ''}
        </p>
      </div>
      <div class="actions">
        <button onClick={copy}>{copied ? 'Link copied' : 'Copy invite link'}</button>
        <button onClick={() => setShowQr(!showQr)} aria-expanded={showQr}>QR code</button>
        <button class="quiet" onClick={props.onLeave}>Leave</button>
      </div>
      {showQr && (
        <div class="qr">
          {qr ? <img src={qr} width={176} height={176} alt={`QR code for the invite link ${link}`} /> : <p>Preparing the code…</p>}
          <p class="muted small">{link}</p>
        </div>
      )}
    </header>
  );
}

const ADMISSION_TEXT: Record<Admission, string> = {
  open: 'anyone with the code joins',
  approval: 'the host lets people in',
  locked: 'locked',
};

function PlaylistEntry(props: {
  entry: Entry;
  index: number;
  /// The upcoming entries in play order (what the numbers show).
  order: Entry[];
  group: GroupView;
  me: string;
  isHost: boolean;
  op: (frame: Frame) => void;
}) {
  const { entry, index, order, group, me, isHost, op } = props;
  const mine = entry.votes[me] ?? 0;
  const skipped = entry.skip_votes.includes(me);
  const canEdit = isHost || (group.settings.guest_controls && entry.added_by === me);
  // Moving places an entry where its neighbour in play order is in the playlist; only the
  // playlist's own order can be arranged (votes or pins decide otherwise).
  const movable = group.settings.queue_order !== 'votes' && !entry.pinned;
  const neighbour = (i: number) => (order[i] && !order[i].pinned ? group.playlist.findIndex((e) => e.entry_id === order[i].entry_id) : -1);
  const up = neighbour(index - 1);
  const down = neighbour(index + 1);
  const vote = (value: number) => op({ type: 'vote', entry_id: entry.entry_id, value: mine === value ? 0 : value });
  return (
    <li class="entry" data-entry={entry.entry_id} data-track={entry.track.id}>
      <span class="position" aria-hidden="true">{index + 1}</span>
      <div class="track">
        <span class="title">{entry.track.title}</span>
        <span class="artist">{entry.track.artist}</span>
        <span class="added">added by {entry.added_by === me ? 'you' : nameOf(group, entry.added_by)}</span>
      </div>
      <div class="votes" role="group" aria-label={`Votes for ${entry.track.title}`}>
        <button class="icon" aria-pressed={mine === 1} aria-label="Vote up" onClick={() => vote(1)}>▲</button>
        <span class="score" aria-label="score">{entry.score}</span>
        <button class="icon" aria-pressed={mine === -1} aria-label="Vote down" onClick={() => vote(-1)}>▼</button>
        <button class="skip" aria-pressed={skipped} disabled={skipped}
          onClick={() => op({ type: 'skip_vote', entry_id: entry.entry_id })}>
          Skip {entry.skip_votes.length}/{entry.skip_needed}
        </button>
      </div>
      {(canEdit || isHost) && (
        <div class="controls" role="group" aria-label={`Arrange ${entry.track.title}`}>
          {isHost && (
            <button class="pin" aria-pressed={!!entry.pinned} aria-label={entry.pinned ? 'Unpin' : 'Pin to play next'}
              title={entry.pinned ? 'Unpin' : 'Pin: plays before unpinned tracks'}
              onClick={() => op({ type: 'pin', entry_id: entry.entry_id, pinned: !entry.pinned })}>{entry.pinned ? 'Pinned' : 'Pin'}</button>
          )}
          {isHost && (
            <button class="icon" aria-label="Play now" title="Play now"
              onClick={() => op({ type: 'play', entry_id: entry.entry_id })}>▶</button>
          )}
          {canEdit && movable && (
            <>
              <button class="icon" aria-label="Move up" disabled={up < 0}
                onClick={() => op({ type: 'move_track', entry_id: entry.entry_id, to_index: up })}>↑</button>
              <button class="icon" aria-label="Move down" disabled={down < 0}
                onClick={() => op({ type: 'move_track', entry_id: entry.entry_id, to_index: down })}>↓</button>
            </>
          )}
          {canEdit && (
          <button class="icon danger" aria-label="Remove"
            onClick={() => op({ type: 'remove_track', entry_id: entry.entry_id })}>✕</button>
          )}
        </div>
      )}
    </li>
  );
}

function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/// The one track everyone hears, with its progress (ticking locally between server events),
/// the host's controls and everyone's skip vote.
function NowPlayingBar(props: { group: GroupView; me: string; isHost: boolean; op: (frame: Frame) => void }) {
  const { group, me, isHost, op } = props;
  const now: NowPlaying | null | undefined = group.now_playing;
  const [, tick] = useState(0);
  useEffect(() => {
    if (!now?.playing) return;
    const timer = window.setInterval(() => tick((t) => t + 1), 500);
    return () => window.clearInterval(timer);
  }, [now?.playing, now?.entry.entry_id]);
  if (!now) {
    const queued = group.playlist.length > 0;
    return (
      <section class="card now-playing idle" aria-label="Now playing" data-testid="now-playing">
        <p class="muted">{queued ? 'Nothing is playing yet.' : 'Nothing is playing. Add tracks to get the music going.'}</p>
        {isHost && <button class="primary" disabled={!queued} onClick={() => op({ type: 'play' })}>▶ Play</button>}
        {!isHost && queued && <p class="muted small">The host starts the music.</p>}
      </section>
    );
  }
  const { entry } = now;
  const position = positionNow(now);
  const duration = entry.track.duration_ms;
  const skipped = entry.skip_votes.includes(me);
  return (
    <section class="card now-playing" aria-label="Now playing" data-testid="now-playing" data-track={entry.track.id}
      data-state={now.playing ? 'playing' : 'paused'}>
      <div class="track">
        <span class="label">
          {now.playing ? 'Now playing' : 'Paused'}
          {group.playback_target && <> · on {group.playback_target.device_name}</>}
        </span>
        <span class="title">{entry.track.title}</span>
        <span class="artist">{entry.track.artist} · added by {entry.added_by === me ? 'you' : nameOf(group, entry.added_by)}</span>
      </div>
      <div class="progress">
        <span class="time">{clock(position)}</span>
        <div class="bar" role="progressbar" aria-label="Position" aria-valuemin={0} aria-valuemax={Math.round(duration / 1000)}
          aria-valuenow={Math.round(position / 1000)}>
          <div style={{ width: `${(100 * position) / Math.max(1, duration)}%` }} />
        </div>
        <span class="time">{clock(duration)}</span>
      </div>
      <div class="now-actions">
        {isHost && (now.playing
          ? <button onClick={() => op({ type: 'pause' })} aria-label="Pause">❚❚ Pause</button>
          : <button class="primary" onClick={() => op({ type: 'play' })} aria-label="Play">▶ Play</button>)}
        {isHost && <button onClick={() => op({ type: 'next' })} aria-label="Next track">Next ▶▶</button>}
        <button class="skip" aria-pressed={skipped} disabled={skipped}
          onClick={() => op({ type: 'skip_vote', entry_id: entry.entry_id })}>
          Vote to skip {entry.skip_votes.length}/{entry.skip_needed}
        </button>
      </div>
      {group.playback_issue && (
        <p class="issue" role="status" data-testid="playback-issue" data-code={group.playback_issue.code}>
          {group.playback_target ? `${group.playback_target.device_name} is not following: ` : ''}
          {group.playback_issue.message}. The room plays on here meanwhile.
        </p>
      )}
    </section>
  );
}

/// The host's queue settings: order by votes, auto-fill.
function QueueSettings(props: { group: GroupView; op: (frame: Frame) => void }) {
  const { group, op } = props;
  const set = (settings: Record<string, unknown>) => op({ type: 'update_settings', settings });
  return (
    <div class="queue-settings">
      <label class="check" title="Tracks with the most votes play first (pinned tracks always lead)">
        <input type="checkbox" checked={group.settings.queue_order === 'votes'}
          onChange={(e) => set({ queue_order: (e.target as HTMLInputElement).checked ? 'votes' : 'added' })} />
        Votes decide what plays next
      </label>
      <label class="check" title={`When fewer than ${group.settings.auto_fill_min ?? 3} tracks are queued, Chorus adds the room's best picks`}>
        <input type="checkbox" checked={!!group.settings.auto_fill}
          onChange={(e) => set({ auto_fill: (e.target as HTMLInputElement).checked })} />
        Keep the queue filled
      </label>
    </div>
  );
}

function History(props: { played: Played[]; group: GroupView; me: string }) {
  const { played, group, me } = props;
  if (played.length === 0) return null;
  const how = { started: '', ended: '', next: ' · skipped by the host', skipped: ' · skipped by vote' };
  return (
    <details class="history">
      <summary>Played <span class="count">{played.length}</span></summary>
      <ol class="played" reversed>
        {[...played].reverse().map((p) => (
          <li key={p.entry_id} data-track={p.track.id}>
            <span class="title">{p.track.title}</span>
            <span class="artist">{p.track.artist} · {p.added_by === me ? 'you' : nameOf(group, p.added_by)}{how[p.reason]}</span>
          </li>
        ))}
      </ol>
    </details>
  );
}

function Members(props: { group: GroupView; me: string; isHost: boolean; op: (frame: Frame) => void }) {
  const { group, me, isHost, op } = props;
  const pending = group.pending ?? [];
  return (
    <section class="card" aria-labelledby="members-title">
      {isHost && (
        <div class="admission">
          <label for="admission">Who can join</label>
          <select id="admission" value={group.settings.admission ?? 'open'}
            onChange={(e) => op({ type: 'update_settings', settings: { admission: (e.target as HTMLSelectElement).value } })}>
            <option value="open">Anyone with the code</option>
            <option value="approval">People I let in</option>
            <option value="locked">Nobody new (locked)</option>
          </select>
          <label class="check" title="The next picks favour whoever the playlist has served least so far">
            <input type="checkbox" checked={group.settings.session_fairness ?? true}
              onChange={(e) => op({ type: 'update_settings', settings: { session_fairness: (e.target as HTMLInputElement).checked } })} />
            Balance the whole night
          </label>
        </div>
      )}
      {isHost && pending.length > 0 && (
        <div class="pending" role="region" aria-labelledby="pending-title">
          <h3 id="pending-title">Waiting to join <span class="count">{pending.length}</span></h3>
          <ul class="members">
            {pending.map((r) => (
              <li key={r.user_id} data-pending={r.user_id}>
                <span class="name">{r.display_name}</span>
                <span class="member-actions">
                  <button class="link" onClick={() => op({ type: 'admit', user_id: r.user_id })}>Let in</button>
                  <button class="link danger" onClick={() => op({ type: 'decline', user_id: r.user_id })}>Decline</button>
                </span>
              </li>
            ))}
          </ul>
        </div>
      )}
      <h2 id="members-title">In the room <span class="count">{group.members.filter((m) => m.online).length}/{group.members.length}</span></h2>
      <ul class="members">
        {group.members.map((m) => (
          <li key={m.user_id} data-member={m.user_id}>
            <span class={`dot ${m.online ? 'online' : 'away'}`} aria-hidden="true" />
            <span class="name">{m.display_name}{m.user_id === me ? ' (you)' : ''}</span>
            <span class="sr-only">{m.online ? 'online' : 'away'}</span>
            {m.role === 'host' && <span class="badge">host</span>}
            {isHost && m.user_id !== me && (
              <span class="member-actions">
                <button class="link" onClick={() => op({ type: 'set_host', user_id: m.user_id })}>Make host</button>
                <button class="link danger" onClick={() => op({ type: 'kick', user_id: m.user_id })}>Remove</button>
              </span>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Harmony(props: { least: number; average: number }) {
  const pct = (x: number) => `${Math.round(Math.max(0, Math.min(1, x)) * 100)}%`;
  return (
    <div class="harmony" aria-label="Group harmony">
      <div class="meter">
        <span>Least happy member</span>
        <div class="bar" role="meter" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(props.least * 100)}>
          <div style={{ width: pct(props.least) }} />
        </div>
        <span class="value">{pct(props.least)}</span>
      </div>
      <div class="meter">
        <span>Average member</span>
        <div class="bar" role="meter" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(props.average * 100)}>
          <div style={{ width: pct(props.average) }} />
        </div>
        <span class="value">{pct(props.average)}</span>
      </div>
    </div>
  );
}

/// "3 of these 10 are for you": the tracks this listener is predicted to like most of the room.
function YourShare(props: { recs: GroupRecommendations; me: string }) {
  const mine = props.recs.members.find((m) => m.user_id === props.me);
  if (!mine) return null;
  const total = props.recs.items.length;
  return (
    <p class="share" data-testid="your-share">
      {mine.picks === 0
        ? `None of these ${total} is mostly for you yet; like or add what you enjoy.`
        : `${mine.picks} of these ${total} ${mine.picks === 1 ? 'is' : 'are'} for you.`}
    </p>
  );
}

function Recommendations(props: {
  recs: GroupRecommendations | null;
  updating: boolean;
  me: string;
  inPlaylist: Set<string>;
  why: Record<string, Why>;
  onExplain: (trackId: string) => void;
  onAdd: (t: TrackSummary) => void;
}) {
  const { recs } = props;
  return (
    <section class="card recs" aria-labelledby="recs-title">
      <h2 id="recs-title">For the whole room</h2>
      <p class="muted small updating" role="status" aria-live="polite">
        {props.updating && recs ? 'Updating for the latest changes…' : ''}
      </p>
      {!recs ? (
        <p class="empty" aria-busy="true">Finding tracks for everyone…</p>
      ) : (
        <>
          {recs.harmony ? (
            <>
              <Harmony least={recs.harmony.least} average={recs.harmony.average} />
              <YourShare recs={recs} me={props.me} />
            </>
          ) : (
            <p class="muted small">Harmony appears once members have a taste.</p>
          )}
          <p class="muted small">
            {recs.strategy === 'popular_diverse'
              ? 'Nobody has a taste yet: popular picks. Like, vote and add to teach Chorus.'
              : `Chosen by ${recs.strategy.replace('_', ' ')}.`}
            {(recs.members_without_taste?.length ?? 0) > 0 && ` ${recs.members_without_taste.length} member(s) without a taste yet.`}
          </p>
          <ul class="rec-list">
            {recs.items.map((item) => {
              const w = props.why[item.track.id];
              const keenest = item.fit.reduce<{ user_id: string; probability: number } | null>(
                (best, f) => (best && best.probability >= f.probability ? best : f),
                null,
              );
              const forMe = item.fit.length > 1 && keenest?.user_id === props.me;
              return (
                <li key={item.track.id} data-track={item.track.id} data-for-me={forMe ? 'true' : undefined}>
                  <div class="track">
                    <span class="title">{item.track.title}</span>
                    <span class="artist">{item.track.artist}{forMe && <span class="badge for-you">for you</span>}</span>
                  </div>
                  <div class="rec-actions">
                    <button class="link" onClick={() => props.onExplain(item.track.id)} aria-expanded={!!w}>Why?</button>
                    <button onClick={() => props.onAdd(item.track)} disabled={props.inPlaylist.has(item.track.id)}>
                      {props.inPlaylist.has(item.track.id) ? 'Added' : 'Add'}
                    </button>
                  </div>
                  {w && (
                    <p class="why" aria-live="polite" data-done={w.done ? 'true' : 'false'}>
                      {w.text || 'Thinking…'}
                      {w.done && w.source && <span class="source"> · {w.source === 'llm' ? 'written by the model' : 'from the facts'}</span>}
                    </p>
                  )}
                </li>
              );
            })}
          </ul>
        </>
      )}
    </section>
  );
}

/// Search as you type (debounced), with keyboard-friendly results.
export function TrackSearch(props: { onAdd: (t: Track) => void; inPlaylist: Set<string> }) {
  const [query, setQuery] = useState('');
  const [results, setResults] = useState<Track[]>([]);
  const [state, setState] = useState<'idle' | 'loading' | 'done' | 'error'>('idle');
  const [error, setError] = useState('');
  const latest = useRef(0);
  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setResults([]);
      setState('idle');
      return;
    }
    const ticket = ++latest.current;
    const timer = window.setTimeout(async () => {
      setState('loading');
      try {
        const found = await api<{ items: Track[] }>('GET', `/api/v1/tracks?q=${encodeURIComponent(q)}&limit=8`);
        if (ticket === latest.current) {
          setResults(found.items);
          setState('done');
        }
      } catch (err) {
        if (ticket === latest.current) {
          setError(errorText(err));
          setState('error');
        }
      }
    }, 200);
    return () => window.clearTimeout(timer);
  }, [query]);
  const listId = useMemo(() => `search-${Math.random().toString(36).slice(2)}`, []);
  return (
    <div class="search">
      <label for="track-search">Add a track</label>
      <input id="track-search" type="search" placeholder="Search titles and artists" value={query}
        aria-controls={listId} autoComplete="off"
        onInput={(e) => setQuery((e.target as HTMLInputElement).value)} />
      <div id={listId} aria-live="polite">
        {state === 'loading' && <p class="muted small">Searching…</p>}
        {state === 'error' && <p class="error">{error}</p>}
        {state === 'done' && results.length === 0 && <p class="muted small">No track matches “{query}”.</p>}
        {results.length > 0 && (
          <ul class="results">
            {results.map((t) => (
              <li key={t.id} data-track={t.id}>
                <div class="track">
                  <span class="title">{t.title}</span>
                  <span class="artist">{t.artist}</span>
                </div>
                <button disabled={props.inPlaylist.has(t.id)} onClick={() => { props.onAdd(t); setQuery(''); }}
                  aria-label={`Add ${t.title} by ${t.artist}`}>
                  {props.inPlaylist.has(t.id) ? 'Added' : 'Add'}
                </button>
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}
