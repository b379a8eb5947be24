import type { NotifyPayload } from "./notification.ts";
import type { Conversation, StoredMessage, ViewedMark } from "./types.ts";

/**
 * Durable background work, one shape for every kind: an entry has a `kind` and the payload this
 * map gives it. The store writes and reads entries with these types (as `{"kind", ...payload}`),
 * so the shape is written here once. Adding a kind is one line here and one handler in
 * jobs/; entries of a kind are read in order by the one handler registered for it.
 */
export interface OutboxPayloads {
  /** What MongoDB must hold: a conversation made here. */
  conversation: { conversation: Conversation };
  /** A message accepted here. */
  message: { message: StoredMessage };
  /** A read mark applied here. */
  viewed: ViewedMark;
  /** A notification to the recipient of an unread message, due at `dueAt`. */
  notify: NotifyPayload;
  /** An attachment uploaded here, to be copied into GridFS. */
  attachment_copy: { id: string };
  /** An attachment removed here (never sent, or its message deleted), to be removed from GridFS. */
  attachment_delete: { id: string };
}

export type OutboxKind = keyof OutboxPayloads;

export type OutboxEntry<K extends OutboxKind = OutboxKind> = {
  [P in K]: { seq: number; kind: P; payload: OutboxPayloads[P]; createdAt: number };
}[K];
