import { AppError, forbidden, notFound } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { Conversation, StoredMessage } from "../model/types.ts";
import { encode } from "../protocol/frames.ts";
import { toWireChange } from "../protocol/wire.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { ChatStore } from "../store/sqlite/index.ts";
import type { Bus } from "./bus.ts";
import { validateText } from "./chat.ts";
import { commitHeld, type PublishFence } from "./publish-fence.ts";

/**
 * Edits and deletes: who may change which message, and telling both sides once the change is
 * durable. A resend (the same edit, a delete of a tombstone) changes nothing and is acked as a
 * duplicate.
 */

/** A message deleted (here, or on another instance and relayed): its tombstone is durable. */
export interface Deleted {
  conversationId: string;
  messageId: string;
  origin: "here" | "relayed";
}

/**
 * Where code that keeps things beside a message (attachments) learns of its deletion. Listeners
 * run after the commit; a throwing listener is reported and does not stop the others.
 */
export function createDeletionHook(report: (err: unknown) => void) {
  const listeners = new Set<(d: Deleted) => void>();
  return {
    subscribe(fn: (d: Deleted) => void): () => void {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    emit(d: Deleted): void {
      for (const fn of listeners) {
        try {
          fn(d);
        } catch (err) {
          report(err);
        }
      }
    },
  };
}
export type DeletionHook = ReturnType<typeof createDeletionHook>;

export interface EditDeps {
  store: ChatStore;
  committer: GroupCommitter;
  /** Holds each change from its commit to its publish. */
  fence: PublishFence;
  bus: Bus;
  now: () => number;
  metrics: Metrics;
  maxMessageChars: number;
  editWindowMs: number;
  deletions: DeletionHook;
}

export interface ChangeResult {
  message: StoredMessage;
  duplicate: boolean;
}

export type Edits = ReturnType<typeof createEdits>;

export function createEdits(deps: EditDeps) {
  const { store, committer, bus, metrics, fence } = deps;

  /** Commits a change, held from its commit to its publish (or its failure). */
  const commitChange = (conversationId: string, messageId: string, write: () => StoredMessage | null) =>
    commitHeld(
      fence,
      committer.submit,
      conversationId,
      { kind: "change", id: messageId },
      write,
      (m) => m !== null,
    );

  const existing = (conversation: Conversation, messageId: string): StoredMessage => {
    const target = store.message(conversation.id, messageId);
    if (!target) throw notFound("no such message in this conversation");
    return target;
  };

  const publish = (message: StoredMessage) => {
    const change =
      message.deletedAt !== null
        ? ({ kind: "deleted", at: message.deletedAt } as const)
        : ({ kind: "edited", at: message.editedAt ?? deps.now(), text: message.text } as const);
    const frame = toWireChange({ ...change, conversationId: message.conversationId, messageId: message.id });
    bus.publish(message.conversationId, encode(frame), undefined, frame.type);
    fence.release(message.conversationId, { kind: "change", id: message.id });
    metrics.messagesOut.inc({ type: frame.type });
  };

  return {
    /** Only the sender, within the edit window, and not once deleted. */
    async edit(conversation: Conversation, userId: number, messageId: string, rawText: string) {
      const text = validateText(rawText, deps.maxMessageChars);
      const target = existing(conversation, messageId);
      if (target.deletedAt !== null) throw notFound("this message was deleted");
      if (target.senderId !== userId) throw forbidden("only the sender can edit a message");
      if (target.text === text) return { message: target, duplicate: true };
      const at = deps.now();
      if (at - target.createdAt > deps.editWindowMs) {
        throw new AppError(403, "edit_window_closed", "this message can no longer be edited");
      }
      const message = await commitChange(conversation.id, messageId, () =>
        store.editMessage(conversation.id, messageId, text, at),
      );
      // Deleted (or edited later) between the check and the commit.
      if (!message) throw notFound("this message was deleted");
      publish(message);
      return { message, duplicate: false };
    },

    /** The sender, or the conversation's mentor (moderation). */
    async remove(conversation: Conversation, userId: number, messageId: string): Promise<ChangeResult> {
      const target = existing(conversation, messageId);
      if (target.senderId !== userId && userId !== conversation.mentorId) {
        throw forbidden("only the sender or the mentor can delete a message");
      }
      if (target.deletedAt !== null) return { message: target, duplicate: true };
      const at = deps.now();
      const message = await commitChange(conversation.id, messageId, () =>
        store.deleteMessage(conversation.id, messageId, at),
      );
      if (!message) return { message: existing(conversation, messageId), duplicate: true };
      publish(message);
      deps.deletions.emit({ conversationId: conversation.id, messageId, origin: "here" });
      return { message, duplicate: false };
    },
  };
}
