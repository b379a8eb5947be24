import { AppError, forbidden, notFound, unavailable } from "../errors.ts";
import { conversationIdFor } from "../ids.ts";
import type { Metrics } from "../metrics.ts";
import type { Conversation, Parties, StoredMessage } from "../model/types.ts";
import { encode, messageFrame } from "../protocol/frames.ts";
import { toWireMessage } from "../protocol/wire.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { ChatStore } from "../store/sqlite/index.ts";
import { isStorageFailure } from "../store/storage-errors.ts";
import { otherParty } from "./access.ts";
import type { Bus } from "./bus.ts";
import type { SecondCopy } from "./copies.ts";
import type { NotifyHooks } from "./notification.ts";
import { commitHeld, type PublishFence } from "./publish-fence.ts";

/**
 * The chat's rules: what a message may be, what marking read means, who hears what. Every
 * write goes through the group committer and is published only after it is durable.
 */

export interface ChatDeps {
  store: ChatStore;
  committer: GroupCommitter;
  /** Holds each new message from its commit to its publish. */
  fence: PublishFence;
  bus: Bus;
  newId: () => string;
  now: () => number;
  metrics: Metrics;
  maxMessageChars: number;
  /** Throws `unavailable` while the disk is too short to take new messages. */
  admit?: () => void;
  /** With MongoDB: get-or-create that first asks MongoDB for the parties' existing id and history. */
  history?: {
    open(id: string, parties: Parties, now: number, since?: string): Promise<Conversation>;
  };
  /** With ACK_COPIES=2: an ack (the return of send) waits for a peer's durable copy. */
  secondCopy?: SecondCopy;
  /** With a notification sink: opens and ends notification cycles inside the same commits. */
  notify?: NotifyHooks;
}

export type Chat = ReturnType<typeof createChat>;

/** Characters as people count them (code points), not UTF-16 units. */
function charCount(s: string, atMost: number): number {
  if (s.length <= atMost) return s.length; // code points never exceed UTF-16 units
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** `allowEmpty`: the message carries attachments, so no text is fine. */
export function validateText(raw: string, maxChars: number, allowEmpty = false): string {
  const text = raw.trim();
  if (text.length === 0 && !allowEmpty) {
    throw new AppError(400, "empty", "a message needs text or at least one attachment");
  }
  if (charCount(text, maxChars) > maxChars) {
    throw new AppError(413, "too_long", `text is longer than ${maxChars} characters`);
  }
  return text;
}

export function createChat(deps: ChatDeps) {
  const { store, committer, bus, metrics, fence } = deps;

  return {
    async openConversation(parties: Parties, since?: string): Promise<Conversation> {
      const id = conversationIdFor(parties.lessonId, parties.mentorId, parties.studentId);
      try {
        if (deps.history) return await deps.history.open(id, parties, deps.now(), since);
        const existing = store.existingConversation(id, parties);
        if (existing) return existing;
        // Through the group commit: the first connects of a new term share syncs instead of
        // each stopping the loop for one of its own.
        const now = deps.now();
        await committer.submit(() => store.createConversation(id, parties, now));
        const created = store.existingConversation(id, parties);
        if (!created) throw new Error(`conversation ${id} is not stored after its commit`);
        return created;
      } catch (err) {
        // A new conversation is a write: on a full disk the connect is refused as retryable.
        if (isStorageFailure(err)) throw unavailable("the server cannot store a new conversation right now");
        throw err;
      }
    },

    async send(
      conversation: Conversation,
      senderId: number,
      rawText: string,
      clientId: string | undefined,
      attachmentIds: readonly string[] = [],
      replyTo?: string,
    ): Promise<{ message: StoredMessage; duplicate: boolean }> {
      const text = validateText(rawText, deps.maxMessageChars, attachmentIds.length > 0);
      deps.admit?.();
      // A delete keeps the tombstone; only retention removes rows, and only flushed, older ones.
      if (replyTo !== undefined && !store.message(conversation.id, replyTo)) {
        throw notFound("reply_to: no such message in this conversation");
      }
      const id = deps.newId();
      const createdAt = deps.now();
      const key = { kind: "message", id } as const;
      const result = await commitHeld(
        fence,
        committer.submit,
        conversation.id,
        key,
        () => {
          const r = store.sendMessage(
            { id, conversationId: conversation.id, senderId, text, createdAt, clientId, replyTo },
            attachmentIds,
          );
          if (!r.duplicate) deps.notify?.accepted(conversation, r.message);
          return r;
        },
        (r) => !r.duplicate,
      );
      const frame = encode(messageFrame(toWireMessage(result.message)));
      if (!result.duplicate) {
        metrics.messagesIn.inc();
        bus.publish(conversation.id, frame, undefined, "message");
        fence.release(conversation.id, key);
        metrics.messagesOut.inc({ type: "message" });
      }
      // A retry too: the first attempt's ack (and maybe its copy) may never have happened.
      if (deps.secondCopy) await deps.secondCopy.secure(conversation, "message", frame);
      return result;
    },

    /** Read-up-to semantics: the message and every earlier one from the other participant. */
    async markViewed(
      conversation: Conversation,
      viewerId: number,
      messageId: string,
    ): Promise<{ viewedAt: number }> {
      const target = store.message(conversation.id, messageId);
      if (!target) throw notFound("no such message in this conversation");
      if (target.senderId === viewerId) throw forbidden("only the recipient can mark a message viewed");
      const viewedAt = deps.now();
      const sender = otherParty(conversation, viewerId);
      await committer.submit(() => {
        store.markViewed(conversation.id, sender, viewerId, messageId, viewedAt);
        deps.notify?.viewed(conversation.id, viewerId, messageId);
      });
      deps.notify?.viewedHere(conversation.id, viewerId, messageId);
      const frame = encode({
        type: "viewed",
        conversation_id: conversation.id,
        message_id: messageId,
        viewer_id: viewerId,
        viewed_at: new Date(viewedAt).toISOString(),
      });
      // Broadcast even when nothing changed: a second device may have missed the first receipt.
      bus.publish(conversation.id, frame, undefined, "viewed");
      // No ack waits on a read mark: its copy is made, not awaited.
      void deps.secondCopy?.secure(conversation, "viewed", frame);
      metrics.messagesOut.inc({ type: "viewed" });
      return { viewedAt };
    },

    typing(conversation: Conversation, senderId: number, isTyping: boolean): void {
      bus.publish(
        conversation.id,
        encode({
          type: "typing",
          conversation_id: conversation.id,
          sender_id: senderId,
          is_typing: isTyping,
        }),
        otherParty(conversation, senderId),
        "typing",
      );
      metrics.messagesOut.inc({ type: "typing" });
    },

    announcePresence(conversation: Conversation, userId: number, online: boolean, lastSeen?: number): void {
      bus.publish(
        conversation.id,
        encode({
          type: "presence",
          user_id: userId,
          online,
          ...(lastSeen !== undefined ? { last_seen: new Date(lastSeen).toISOString() } : {}),
        }),
        otherParty(conversation, userId),
        "presence",
      );
      metrics.messagesOut.inc({ type: "presence" });
    },
  };
}
