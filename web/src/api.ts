// The REST client: typed calls, the listener's session (a guest account kept in localStorage),
// and errors that carry the server's stable code and message.

export interface TrackSummary {
  id: string;
  title: string;
  artist: string;
  album: string;
  duration_ms: number;
}

export interface AudioFeatures {
  danceability: number;
  energy: number;
  valence: number;
  acousticness: number;
  instrumentalness: number;
  speechiness: number;
  liveness: number;
  tempo: number;
}

export interface Track extends TrackSummary {
  genres: string[];
  popularity: number;
  audio_features: AudioFeatures;
}

export interface Reason {
  signal: string;
  label: string;
  contribution: number;
}

export interface SoloItem {
  track: Track;
  score: number;
  confidence: number;
  reasons: Reason[];
  because_you_liked?: { id: string; title: string; artist: string };
}

export interface SoloList {
  request_id: string;
  strategy: string;
  items: SoloItem[];
}

export interface Member {
  user_id: string;
  display_name: string;
  role: 'host' | 'member';
  online: boolean;
  connections: number;
}

export interface Entry {
  entry_id: string;
  track: TrackSummary;
  added_by: string;
  added_at: number;
  score: number;
  votes: Record<string, number>;
  skip_votes: string[];
  skip_needed: number;
  pinned?: boolean;
}

/// The track playing. `position_ms` was the position at `anchor` (this client's clock, set when
/// the snapshot or event arrived); it moves on with the clock while `playing`.
export interface NowPlaying {
  entry: Entry;
  playing: boolean;
  position_ms: number;
  started_at: number;
  anchor?: number;
}

export interface PlaybackTarget {
  user_id: string;
  device_id: string;
  device_name: string;
}

export interface SpotifyStatus {
  available: boolean;
  state: 'disconnected' | 'connected' | 'reconnect';
  spotify_user_id?: string | null;
  display_name?: string | null;
  import_enabled: boolean;
}

export interface SpotifyDevice {
  id: string;
  name: string;
  kind: string;
  is_active: boolean;
}

export interface Played {
  entry_id: string;
  track: TrackSummary;
  added_by: string;
  started_at: number;
  ended_at: number;
  reason: 'started' | 'ended' | 'next' | 'skipped';
}

export type Admission = 'open' | 'approval' | 'locked';

export interface GroupSettings {
  max_members: number;
  skip_threshold: number;
  aggregation: string;
  guest_controls: boolean;
  admission: Admission;
  session_fairness: boolean;
  queue_order?: 'added' | 'votes';
  no_repeat_window?: number;
  auto_fill?: boolean;
  auto_fill_min?: number;
}

export interface PendingJoin {
  user_id: string;
  display_name: string;
  requested_at: number;
}

export interface GroupView {
  group_id: string;
  name: string;
  join_code: string;
  host: string;
  settings: GroupSettings;
  members: Member[];
  playlist: Entry[];
  /// The upcoming entries' ids in play order.
  up_next?: string[];
  now_playing?: NowPlaying | null;
  history?: Played[];
  playback_target?: PlaybackTarget | null;
  playback_issue?: { code: string; message: string } | null;
  pending: PendingJoin[];
  seq: number;
}

export interface GroupItem {
  /// `recommendations` frames carry the brief track a playlist entry has; the REST mirror the
  /// whole track.
  track: TrackSummary;
  score: number;
  least: number;
  fit: { user_id: string; probability: number }[];
  /// In the REST mirror only: `recommendations` frames leave them out.
  reasons?: Reason[];
}

export interface GroupRecommendations {
  request_id: string;
  strategy: string;
  items: GroupItem[];
  /// Absent while no member has a taste (the list is then popular_diverse).
  harmony: { least: number; average: number } | null;
  /// `picks`: how many of the list's tracks this member is predicted to like most of the room.
  members: { user_id: string; satisfaction: number; picks: number }[];
  members_without_taste: string[];
  seq: number;
}

export interface Profile {
  counts: Record<string, number>;
  top_genres: { name: string; share: number }[];
  audio_features: { name: string; yours: number; catalog: number }[];
  confidence: number;
  cold_start: boolean;
}

export interface Comparison {
  a: Track;
  b: Track;
  p_a: number;
}

export interface Explanation {
  track_id: string;
  text: string;
  source: 'llm' | 'template';
  model?: string;
  latency_ms: number;
}

export interface Session {
  userId: string;
  name: string;
  token: string;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

const SESSION_KEY = 'chorus.session';

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export function forgetSession(): void {
  localStorage.removeItem(SESSION_KEY);
}

/// Calls the API; a non-2xx answer becomes an ApiError with the server's code.
export async function api<T>(
  method: string,
  path: string,
  options: { body?: unknown; token?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Chorus cannot be reached. Check your connection.');
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new ApiError(response.status, error.code ?? 'error', error.message ?? response.statusText);
  }
  return json as T;
}

/// Creates a guest account with this display name and remembers it on this device.
export async function signUp(name: string): Promise<Session> {
  const created = await api<{ user_id: string; display_name: string; token: string }>(
    'POST',
    '/api/v1/users',
    { body: { display_name: name } },
  );
  const session = { userId: created.user_id, name: created.display_name, token: created.token };
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return error instanceof Error ? error.message : String(error);
}
