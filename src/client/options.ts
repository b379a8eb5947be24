import type { BackoffOptions } from "./backoff.ts";
import type {
  Ack,
  ChatError,
  ErrorCode,
  Message,
  Presence,
  Ready,
  TokenSource,
  Typing,
  Viewed,
} from "./types.ts";

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
  attachments: string[];
  resolve: (ack: Ack) => void;
  reject: (err: ChatError) => void;
  retries: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** Resume from the very start: a valid ObjectId lower than any real one. */
export const ZERO_ID = "000000000000000000000000";

/** Server errors worth another try with the same client_id; the rest are final. */
export const RETRYABLE: ReadonlySet<ErrorCode> = new Set(["internal", "rate_limited", "unavailable"]);

/** The `/ws` URL for these options; the token rides in the query only when asked to. */
export function socketUrl(opts: ChatClientOptions, since: string, token: string): string {
  const url = new URL(`${opts.url.replace(/\/+$/, "").replace(/^http/, "ws")}/ws`);
  url.searchParams.set("lesson_id", String(opts.lessonId));
  if (opts.studentId !== undefined) url.searchParams.set("student_id", String(opts.studentId));
  url.searchParams.set("since", since);
  if (opts.tokenIn === "query") url.searchParams.set("token", token);
  return url.toString();
}
