// The group as this client knows it: the last snapshot with every later event applied in seq
// order, exactly as the server folds its log (src/groups/state.rs).

import type { Entry, GroupView, NowPlaying } from './api';
import type { Frame } from './socket';

export function applyEvent(group: GroupView, event: Frame): GroupView {
  const g: GroupView = {
    ...group,
    seq: event.seq,
    playlist: [...group.playlist],
    members: [...group.members],
    pending: [...(group.pending ?? [])],
  };
  const p = event.payload ?? {};
  const entry = (id: string) => g.playlist.findIndex((e) => e.entry_id === id);
  const update = (id: string, change: (e: Entry) => Entry) => {
    const i = entry(id);
    if (i >= 0) g.playlist[i] = change(g.playlist[i]);
    else if (g.now_playing?.entry.entry_id === id) g.now_playing = { ...g.now_playing, entry: change(g.now_playing.entry) };
  };
  const position = (position_ms: number, playing: boolean) => {
    if (g.now_playing) g.now_playing = { ...g.now_playing, position_ms, playing, anchor: Date.now() };
  };
  switch (event.kind) {
    case 'join_requested':
      if (!g.pending.some((r) => r.user_id === p.user_id) && !g.members.some((m) => m.user_id === p.user_id)) {
        g.pending.push({ user_id: p.user_id, display_name: p.display_name, requested_at: event.ts });
      }
      break;
    case 'join_declined':
      g.pending = g.pending.filter((r) => r.user_id !== p.user_id);
      break;
    case 'member_joined':
      g.pending = g.pending.filter((r) => r.user_id !== p.user_id);
      if (!g.members.some((m) => m.user_id === p.user_id)) {
        g.members.push({ user_id: p.user_id, display_name: p.display_name, role: 'member', online: false, connections: 0 });
      }
      break;
    case 'member_left':
      g.members = g.members.filter((m) => m.user_id !== p.user_id);
      if (g.playback_target?.user_id === p.user_id) g.playback_target = null;
      break;
    case 'host_changed':
      g.host = p.user_id;
      g.members = g.members.map((m) => ({ ...m, role: m.user_id === p.user_id ? 'host' : 'member' }));
      break;
    case 'settings_changed':
      g.settings = p.settings;
      break;
    case 'track_added':
      if (entry(p.entry_id) < 0) {
        g.playlist.push({
          entry_id: p.entry_id,
          track: p.track,
          added_by: p.added_by,
          added_at: event.ts,
          score: 0,
          votes: {},
          skip_votes: [],
          skip_needed: skipNeeded(g),
        });
      }
      break;
    case 'track_removed':
    case 'track_skipped':
      g.playlist = g.playlist.filter((e) => e.entry_id !== p.entry_id);
      break;
    case 'track_moved': {
      const from = entry(p.entry_id);
      if (from >= 0) {
        const [moved] = g.playlist.splice(from, 1);
        g.playlist.splice(Math.min(p.to_index, g.playlist.length), 0, moved);
      }
      break;
    }
    case 'vote_cast':
      update(p.entry_id, (e) => {
        const votes = { ...e.votes };
        if (p.value === 0) delete votes[p.user_id];
        else votes[p.user_id] = p.value;
        const score = Object.values(votes).reduce((a, b) => a + b, 0);
        return { ...e, votes, score };
      });
      break;
    case 'playback_advanced': {
      const now = g.now_playing;
      if (now && now.entry.entry_id === p.finished) {
        g.history = [...(g.history ?? []), {
          entry_id: now.entry.entry_id, track: now.entry.track, added_by: now.entry.added_by,
          started_at: now.started_at, ended_at: event.ts, reason: p.reason,
        }].slice(-50);
        g.now_playing = null;
      }
      const i = p.started ? entry(p.started) : -1;
      if (i >= 0 && !g.now_playing) {
        const [started] = g.playlist.splice(i, 1);
        g.now_playing = { entry: { ...started, skip_votes: [] }, playing: true, position_ms: 0, started_at: event.ts, anchor: Date.now() };
      }
      break;
    }
    case 'playback_paused':
      position(p.position_ms, false);
      break;
    case 'playback_resumed':
      position(p.position_ms, true);
      break;
    case 'playback_seeked':
      position(p.position_ms, g.now_playing?.playing ?? false);
      break;
    case 'playback_target_changed':
      g.playback_target = p.target;
      if (!p.target) g.playback_issue = null;
      break;
    case 'track_pinned':
      update(p.entry_id, (e) => ({ ...e, pinned: p.pinned }));
      break;
    case 'skip_vote_cast':
      update(p.entry_id, (e) => ({
        ...e,
        skip_votes: e.skip_votes.includes(p.user_id) ? e.skip_votes : [...e.skip_votes, p.user_id],
        skip_needed: p.needed,
      }));
      break;
  }
  g.up_next = playOrder(g).map((e) => e.entry_id);
  return g;
}

/// The upcoming entries in play order, as the server decides it (src/groups/queue.rs):
/// pinned first, then by net votes when the room orders by votes; ties keep the playlist order.
export function playOrder(group: GroupView): Entry[] {
  const byVotes = group.settings.queue_order === 'votes';
  return group.playlist
    .map((e, i) => ({ e, i }))
    .sort((x, y) =>
      Number(!!y.e.pinned) - Number(!!x.e.pinned) || (byVotes ? y.e.score - x.e.score : 0) || x.i - y.i)
    .map(({ e }) => e);
}

/// Where the track playing is now (ms), by this client's clock.
export function positionNow(now: NowPlaying, clock = Date.now()): number {
  const moved = now.playing && now.anchor ? clock - now.anchor : 0;
  return Math.min(now.entry.track.duration_ms, now.position_ms + Math.max(0, moved));
}

export function applyPresence(group: GroupView, frame: Frame): GroupView {
  return {
    ...group,
    members: group.members.map((m) =>
      m.user_id === frame.user_id ? { ...m, online: frame.online, connections: frame.connections } : m,
    ),
  };
}

/// Skip votes needed with the members online now: min(⌈t·n⌉, ⌈2√n⌉), at least 1.
export function skipNeeded(group: GroupView): number {
  const online = Math.max(1, group.members.filter((m) => m.online).length);
  return Math.max(1, Math.min(Math.ceil(group.settings.skip_threshold * online), Math.ceil(2 * Math.sqrt(online))));
}

export function nameOf(group: GroupView, userId: string): string {
  if (userId === 'chorus') return 'Chorus';
  return group.members.find((m) => m.user_id === userId)?.display_name ?? 'a former member';
}
