// The group socket: a ticket, then `join` with the last seq seen, so a reconnect receives
// exactly the missed events (or a snapshot). Operations carry a client_msg_id and stay pending
// until acknowledged; after a reconnect they are sent again, and the server acknowledges a
// repeated id with its original seq instead of applying it twice.

import { api } from './api';

export type SocketStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- frames are the server's JSON
export type Frame = { type: string; [key: string]: any };

export interface SocketHandlers {
  onFrame(frame: Frame): void;
  onStatus(status: SocketStatus, detail?: string): void;
}

/// Close codes after which reconnecting cannot help.
const FINAL_CLOSE = new Set([1008, 4003]);
/// The server dropped this client for reading too slowly: catching up event by event could do
/// it again, so the next join asks for a snapshot instead.
const SLOW_CONSUMER = 4008;

export class GroupSocket {
  private socket: WebSocket | null = null;
  private lastSeq: number | null = null;
  private pending = new Map<string, Frame>();
  private attempt = 0;
  private stopped = false;
  private joined = false;
  private timer: number | undefined;
  private nextId = 1;

  constructor(
    private token: string,
    private groupId: string,
    private handlers: SocketHandlers,
  ) {}

  start(): void {
    this.handlers.onStatus('connecting');
    void this.open();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.socket?.close(1000, 'leaving the page');
    this.handlers.onStatus('closed');
  }

  /// Sends an operation; it is retried after reconnects until acknowledged.
  op(frame: Frame): string {
    const id = `${Date.now().toString(36)}-${this.nextId++}`;
    const withId = { ...frame, client_msg_id: id };
    this.pending.set(id, withId);
    if (this.joined) this.socket?.send(JSON.stringify(withId));
    return id;
  }

  /// Sends a request that is not worth repeating after a reconnect (explain, refresh).
  request(frame: Frame): void {
    if (this.joined) this.socket?.send(JSON.stringify(frame));
  }

  private async open(): Promise<void> {
    let ticket: string;
    try {
      ticket = (await api<{ ticket: string }>('POST', '/api/v1/ws-ticket', { body: {}, token: this.token }))
        .ticket;
    } catch (error) {
      return this.retry(`could not get a socket ticket (${String(error)})`);
    }
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`);
    this.socket = socket;
    socket.onmessage = (message) => this.receive(JSON.parse(String(message.data)) as Frame);
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.joined = false;
      if (this.stopped) return;
      if (FINAL_CLOSE.has(event.code)) {
        this.handlers.onStatus('closed', event.reason || 'the server closed the session');
        return;
      }
      if (event.code === SLOW_CONSUMER) this.lastSeq = null;
      this.retry(event.reason || `connection lost (${event.code})`);
    };
  }

  private receive(frame: Frame): void {
    switch (frame.type) {
      case 'welcome': {
        const join: Frame = { type: 'join', group_id: this.groupId, client_msg_id: 'join' };
        if (this.lastSeq !== null) join.last_seq = this.lastSeq;
        this.socket?.send(JSON.stringify(join));
        return;
      }
      case 'snapshot':
        this.lastSeq = frame.seq;
        break;
      case 'event':
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // already applied
        this.lastSeq = frame.seq;
        break;
      case 'ack':
        if (frame.client_msg_id === 'join') {
          this.joined = true;
          this.attempt = 0;
          this.handlers.onStatus('open');
          for (const op of this.pending.values()) this.socket?.send(JSON.stringify(op));
          return;
        }
        this.pending.delete(frame.client_msg_id);
        break;
      case 'error':
        if (frame.client_msg_id === 'join') {
          this.stopped = true;
          this.handlers.onStatus('closed', frame.message);
          this.socket?.close(1000);
          return;
        }
        if (frame.client_msg_id) this.pending.delete(frame.client_msg_id);
        break;
    }
    this.handlers.onFrame(frame);
  }

  private retry(detail: string): void {
    if (this.stopped) return;
    this.attempt += 1;
    const delay = Math.min(10_000, 400 * 2 ** Math.min(this.attempt - 1, 5));
    this.handlers.onStatus('reconnecting', detail);
    this.timer = window.setTimeout(() => void this.open(), delay);
  }
}
