// Type declarations of plaza.js, the room.pubsub client of a Plaza hub.

/** Every code a call can reject with; the same strings as package pubsub. */
export type PlazaErrorCode =
  | "INVALID_TOPIC_NAME"
  | "PAYLOAD_TOO_LARGE"
  | "INVALID_PAYLOAD"
  | "NOT_CONNECTED"
  | "RATE_LIMIT_EXCEEDED"
  | "PERMISSION_DENIED"
  | "NETWORK_ERROR"
  | "INVALID_LIMIT"
  | "INVALID_HISTORY_OPTS"
  | "INVALID_REQUEST"
  | "UNAUTHENTICATED"
  | "TOO_MANY_SUBSCRIPTIONS"
  | "SLOW_CONSUMER"
  | "INTERNAL_ERROR"
  | (string & {});

/** The error every call rejects with. */
export class PlazaError extends Error {
  readonly name: "PlazaError";
  readonly code: PlazaErrorCode;
  /** True for NETWORK_ERROR and RATE_LIMIT_EXCEEDED: trying later may succeed. */
  readonly retriable: boolean;
  /** With RATE_LIMIT_EXCEEDED: how long to wait, in ms. */
  readonly retryAfterMs?: number;
}

/** A message as the server confirmed it: what publish resolves with and subscribers receive. */
export interface PubSubMessage<T = unknown> {
  /** Snowflake id, a decimal string (JavaScript numbers cannot hold it). */
  id: string;
  topic: string;
  /** The sender's client id. */
  from: string;
  /** Recipients, when the message was private. */
  to?: string[];
  payload: T;
  metadata?: Record<string, string>;
  /** RFC 3339 time the server assigned. */
  timestamp: string;
  /** False for publishes with persist: false, which history never returns. */
  persisted: boolean;
}

export interface PublishOpts {
  /** False delivers live but keeps the message out of history. Default true. */
  persist?: boolean;
  /** Only these client ids receive it (and see it in history, with the sender). */
  to?: string[];
  /** String key-value pairs delivered with the payload. */
  metadata?: Record<string, string>;
}

export interface SubscribeOpts {
  /** Rate cap, messages per second; bursts beyond it drop the oldest of the window. 0 or absent: no cap. */
  limit?: number;
}

export interface HistoryOpts {
  /** Page size, 1 to 50. Default 25. */
  limit?: number;
  /** The page just older than this message id. */
  before?: string;
  /** The page just newer than this message id. Never with before. */
  after?: string;
  /** Only these senders; filtered before paging. */
  from?: string | string[];
}

export interface HistoryPage<T = unknown> {
  /** Oldest first; [] on an empty topic. */
  messages: PubSubMessage<T>[];
  /** Whether more messages lie beyond the page in the direction asked. */
  hasMore: boolean;
}

export interface PubSubSubscription<T = unknown> {
  readonly topic: string;
  /** Idempotent: a second call resolves at once. */
  unsubscribe(): Promise<void>;
}

export interface PubSub {
  publish<T = unknown>(topic: string, payload: T, opts?: PublishOpts): Promise<PubSubMessage<T>>;
  subscribe<T = unknown>(topic: string, handler: (msg: PubSubMessage<T>) => void, opts?: SubscribeOpts): Promise<PubSubSubscription<T>>;
  getHistory<T = unknown>(topic: string, opts?: HistoryOpts): Promise<HistoryPage<T>>;
}

/**
 * What onConnectionState receives. "connected" follows join and every
 * reconnect; after a reconnect, gapFilled says whether every persisted
 * message missed while away was fetched from history and handed to the
 * handlers (filled counts them). Messages published with persist: false
 * during the outage are never recovered.
 */
export type ConnectionStateEvent =
  | { state: "connected"; reconnected: boolean; gapFilled: boolean; filled: number }
  | { state: "reconnecting"; attempt: number; error: PlazaError }
  | { state: "disconnected"; error?: PlazaError };

export interface JoinOpts {
  /** The credential, sent in the first frame. */
  token?: string;
  /** A WebSocket constructor; default globalThis.WebSocket. */
  WebSocket?: unknown;
  /** Bounds of the reconnect backoff, ms, doubling with jitter. Default 100 and 5000. */
  reconnectMin?: number;
  reconnectMax?: number;
  /** Retries of a publish or getHistory after NETWORK_ERROR, with one idempotency key. Default 3. */
  retries?: number;
  /** Wait before the first retry, ms, doubling with jitter. Default 250. */
  retryDelay?: number;
  /** How long a request waits for its reply before NETWORK_ERROR, ms. Default 10000. */
  requestTimeout?: number;
  /** How long opening a connection may take, up to the server's welcome, ms. Default 10000. */
  connectTimeout?: number;
  /**
   * How often, ms, the room checks that the server is still there: after an
   * interval with nothing received it pings, and a ping unanswered within
   * the interval drops the connection and reconnects. Default: the server's
   * heartbeatMs (30 s).
   */
  pingInterval?: number;
  /** Fill the gap from history after a reconnect. Default true. */
  gapFill?: boolean;
  onConnectionState?: (ev: ConnectionStateEvent) => void;
  /** Errors no call can return: a failed re-subscribe or gap fill, a handler that threw. */
  onError?: (err: unknown) => void;
}

export interface Room {
  readonly name: string;
  /** The identity the server gave this room: the from of what it publishes. */
  readonly clientId: string;
  /** "connected", "reconnecting" or "disconnected". */
  readonly state: ConnectionStateEvent["state"] | "connecting";
  readonly pubsub: PubSub;
  /** Registers a listener; returns a function that removes it. */
  onConnectionState(fn: (ev: ConnectionStateEvent) => void): () => void;
  /** Closes the connection; later calls reject with NOT_CONNECTED. Idempotent. */
  leave(): Promise<void>;
}

export function join(url: string, roomName: string, opts?: JoinOpts): Promise<Room>;
export function checkTopic(name: string): void;
export function encodePayload(payload: unknown): string;

export const MAX_TOPIC_LEN: 128;
export const MAX_PAYLOAD_BYTES: 32768;
export const MAX_PAYLOAD_DEPTH: 64;
export const MAX_HISTORY_LIMIT: 50;
export const DEFAULT_HISTORY_LIMIT: 25;

export const Plaza: { join: typeof join; PlazaError: typeof PlazaError };
export default Plaza;
