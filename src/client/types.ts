/**
 * The wire types, shared with the server. Type-only imports: they vanish from the bundle, so
 * the client carries no zod.
 */

import type { ErrorCode, Message, OutboundFrame } from "../protocol/frames.ts";
import type { ConversationJson } from "../protocol/wire.ts";

export type { ErrorCode, Message, OutboundFrame };
export type Conversation = ConversationJson;

type FrameOf<T extends OutboundFrame["type"]> = Omit<Extract<OutboundFrame, { type: T }>, "type">;

export type Ack = FrameOf<"ack">;
export type Ready = FrameOf<"ready">;
export type Typing = FrameOf<"typing">;
export type Viewed = FrameOf<"viewed">;
export type Presence = FrameOf<"presence">;
export type ErrorFrame = FrameOf<"error">;

/** An uploaded file, as POST /attachments answers; pass it (or its id) to `send`. */
export interface Attachment {
  id: string;
  name: string;
  size: number;
  mime: string;
  sha256: string;
}

/** What a message carries of each attachment. */
export interface AttachmentRef {
  id: string;
  name: string;
  size: number;
  mime: string;
}

export interface UploadOptions {
  /** The file name shown to the other side; a File's own name otherwise, else "file". */
  name?: string;
  /** Bytes sent so far and the total. */
  onProgress?: (sent: number, total: number) => void;
}

export interface PresenceStatus {
  online: boolean;
  last_seen?: string;
}

export interface Page {
  /** Message ids (cursors): `before` for older pages, `after` for newer. */
  before?: string;
  after?: string;
  /** 1..200, server default 50. */
  limit?: number;
}

/** A token, or a function that returns a fresh one (called before every connect and REST call). */
export type TokenSource = string | (() => string | Promise<string>);

export type ChatErrorCode = ErrorCode | "closed" | "network" | "bad_request" | "unknown";

/** Why a send, a REST call or the connection failed; `code` is the server's error code. */
export class ChatError extends Error {
  constructor(
    readonly code: ChatErrorCode,
    message: string,
    readonly status?: number,
    readonly ref?: string,
  ) {
    super(message);
    this.name = "ChatError";
  }
}
