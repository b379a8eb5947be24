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
  /**
   * A message edited here: the whole message after the edit, so MongoDB can take it even before
   * the instance that accepted the message has flushed it.
   */
  edit: { message: StoredMessage };
  /** A message deleted here: the tombstone (text erased), for the same reason. */
  delete: { message: StoredMessage };
  /**
   * Copies of what another instance accepted (relayed to this one): written to MongoDB only if
   * that instance has not confirmed its own flush before the entry's due time (docs/durability.md).
   */
  relayed_conversation: { conversation: Conversation };
  relayed_message: { message: StoredMessage };
  relayed_viewed: ViewedMark;
  /** A notification to the recipient of an unread message, due at `dueAt`. */
  notify: NotifyPayload;
  /** An attachment uploaded here, to be copied into GridFS. */
  attachment_copy: { id: string };
  /** An attachment removed here (never sent, or its message deleted), to be removed from GridFS. */
  attachment_delete: { id: string };
}

/** The kinds another instance may hold a copy of; a copy is `relayed_<kind>`, filed under `copyKey`. */
export const COPIED_KINDS = ["conversation", "message", "viewed"] as const;
export type CopiedKind = (typeof COPIED_KINDS)[number];
export type CopyKind = `relayed_${CopiedKind}`;

export const copyKindOf = (kind: CopiedKind): CopyKind => `relayed_${kind}`;

/** The kind an entry stands for, copy or not (`relayed_message` → `message`). */
export function copiedKindOf(kind: OutboxKind): CopiedKind | undefined {
  const base = kind.startsWith("relayed_") ? kind.slice("relayed_".length) : kind;
  return (COPIED_KINDS as readonly string[]).includes(base) ? (base as CopiedKind) : undefined;
}

/**
 * The name every instance gives the same change, so a confirmation from the instance that flushed
 * it withdraws the copies waiting elsewhere: conversation and message ids, and a read mark's triple.
 */
export function copyKey(kind: CopiedKind, payload: OutboxPayloads[CopiedKind]): string {
  if (kind === "conversation") return (payload as OutboxPayloads["conversation"]).conversation.id;
  if (kind === "message") return (payload as OutboxPayloads["message"]).message.id;
  const v = payload as ViewedMark;
  return `${v.conversationId}:${v.viewerId}:${v.upToId}`;
}

export type OutboxKind = keyof OutboxPayloads;

export type OutboxEntry<K extends OutboxKind = OutboxKind> = {
  [P in K]: { seq: number; kind: P; payload: OutboxPayloads[P]; createdAt: number };
}[K];
