// Type declarations of tidings.js, the JavaScript client of tidings' native protocol.

export type Payload = unknown;

/** A delivered message. `data` is the JSON value (`kind: 'json'`), the string (`'text'`) or
 * the bytes (`'binary'`). */
export interface Message {
  topic: string;
  offset: number;
  epoch: string;
  kind: 'json' | 'text' | 'binary';
  data: unknown | string | Uint8Array;
}

/** Messages of `topic` after `since` that the server could not deliver; delivery goes on at
 * `next` (null: the next live message) in `epoch`. */
export interface Gap {
  topic: string;
  since: number;
  epoch: string | null;
  next: number | null;
  reason: string;
}

export interface PresenceEvent {
  type: 'presence';
  topic: string;
  event: 'join' | 'leave';
  client: string;
  user: string | null;
}

export interface Member {
  client: string;
  user: string | null;
  info?: unknown;
}

export interface Options {
  /** A signed token (JWT), sent on the upgrade URL. */
  token?: string;
  /** Asked for a fresh token before every reconnect. */
  getToken?: () => string | Promise<string>;
  user?: string;
  password?: string;
  /** A WebSocket implementation (Node < 22: `ws`). Default: globalThis.WebSocket. */
  WebSocket?: unknown;
  fetch?: typeof fetch;
  /** Base of the HTTP API for the fallback (default: the WebSocket URL's origin). */
  httpUrl?: string;
  /** First reconnect delay, ms (default 500); doubles up to `backoffMax` (15000), jittered. */
  backoffBase?: number;
  backoffMax?: number;
  /** Failed WebSocket opens in a row before falling back to SSE + POST (default 2; 0: never). */
  fallbackAfter?: number;
  /** Per request, ms (default 10000). */
  requestTimeout?: number;
  /** false: do not connect until connect() is called. */
  connect?: boolean;
  /** false: subscribe only by frame after hello, never on the upgrade URL (default true:
   * exact topics and patterns without positions go on the URL, those of the larger group,
   * with presence or without; unless a user/password login must come first). */
  urlSubscribe?: boolean;
}

export interface SubscribeOptions {
  presence?: boolean;
  onPresence?: (event: PresenceEvent) => void;
  onGap?: (gap: Gap) => void;
  /** Exact topics: start after this offset (of `epoch`), e.g. where an earlier page stopped. */
  since?: number;
  epoch?: string | null;
}

export interface Subscription {
  readonly topic: string;
  /** Resolves with the server's `ok` reply to the first subscribe. */
  readonly ready: Promise<{ topic: string; epoch?: string | null; offset?: number; replayed?: number }>;
  unsubscribe(): Promise<void>;
}

export interface Ack {
  topic: string;
  offset: number;
  epoch: string;
}

export interface HistoryPage {
  topic: string;
  epoch: string | null;
  earliest: number;
  offset: number;
  messages: Message[];
}

export class TidingsError extends Error {
  code: string;
  details: Record<string, unknown>;
}

export interface Events {
  connected: { client: string | null; transport: 'ws' | 'sse' };
  subscribed: { topic: string; epoch: string | null; offset: number | null; replayed: number };
  disconnected: { code: number; reason: string };
  reconnecting: { attempt: number; delay: number };
  gap: Gap;
  presence: PresenceEvent;
  fallback: { transport: 'sse' };
  error: Error;
}

export class Tidings {
  constructor(url: string, options?: Options);
  readonly state: 'idle' | 'connecting' | 'ready' | 'waiting' | 'closed';
  readonly transport: 'ws' | 'sse' | null;
  readonly clientId: string | null;
  on<K extends keyof Events>(event: K, fn: (value: Events[K]) => void): () => void;
  connect(): Promise<Tidings>;
  whenReady(): Promise<Tidings>;
  close(): void;
  /** Drops the connection as a network failure would; it reconnects and resumes. */
  reconnect(): void;
  subscribe(topic: string, onMessage: (msg: Message, sub: Subscription) => void, options?: SubscribeOptions): Subscription;
  publish(topic: string, payload: unknown, options?: { ack?: true }): Promise<Ack>;
  publish(topic: string, payload: unknown, options: { ack: false }): Promise<undefined>;
  history(topic: string, options?: { since?: number; limit?: number }): Promise<HistoryPage>;
  presence(topic: string): Promise<Member[]>;
  refresh(token: string): Promise<{ user: string | null; expires: number | null }>;
}

/** Whether a pattern (`*` one token, `>` the rest) matches a concrete topic. */
export function matches(pattern: string, topic: string): boolean;

export default Tidings;
