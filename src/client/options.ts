import type { BackoffOptions } from "./backoff.ts";
import type { Ack, ChatError, Message, Presence, Ready, TokenSource, Typing, Viewed } from "./types.ts";

/** What a ChatClient is given and what it tells its listeners. */

export interface ChatClientOptions {
  /** The service's base URL (`http(s)://host:port`); the WebSocket URL is derived from it. */
  url: string;
  token: TokenSource;
  lessonId: number;
  /** Required for mentors (which student); a student may leave it out. */
  studentId?: number;
  /** Resume point for the first connect. Without it the client asks REST for the latest id. */
  since?: string;
  /** `protocol` (default) sends `Sec-WebSocket-Protocol: bearer, <token>`; `query` uses `?token=`. */
  tokenIn?: "protocol" | "query";
  backoff?: Partial<BackoffOptions>;
  /** After this long without a `typing()` call, `is_typing: false` is sent. */
  typingIdleMs?: number;
  /** An unacked message is resent (same client_id) after this long. */
  ackTimeoutMs?: number;
  /** App-level ping interval; a connection silent for two intervals is dropped and redialled. 0 = off. */
  heartbeatMs?: number;
  WebSocket?: typeof WebSocket;
  fetch?: typeof fetch;
}

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface ChatEvents {
  ready: Ready;
  message: Message;
  typing: Typing;
  viewed: Viewed;
  presence: Presence;
  state: { state: ConnectionState; attempt: number; delayMs?: number; code?: number; reason?: string };
  /** Error frames not tied to a pending send, and fatal connection errors. */
  error: ChatError;
}

export interface Pending {
  clientId: string;
  text: string;
  resolve: (ack: Ack) => void;
  reject: (err: ChatError) => void;
  retries: number;
  timer?: ReturnType<typeof setTimeout>;
}
