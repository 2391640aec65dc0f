// The group as this client knows it: the last snapshot with every later event applied in seq
// order, exactly as the server folds its log (src/groups/state.rs).

import type { Entry, GroupView } from './api';
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
    case 'skip_vote_cast':
      update(p.entry_id, (e) => ({
        ...e,
        skip_votes: e.skip_votes.includes(p.user_id) ? e.skip_votes : [...e.skip_votes, p.user_id],
        skip_needed: p.needed,
      }));
      break;
  }
  return g;
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
  return group.members.find((m) => m.user_id === userId)?.display_name ?? 'a former member';
}
