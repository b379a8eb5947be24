import { z } from "zod";
import { copyKey } from "../model/outbox.ts";
import type { Conversation, MessageChange } from "../model/types.ts";
import { messageDeletedSchema, messageEditedSchema, messageSchema } from "../protocol/frames.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { ChatStore } from "../store/sqlite/index.ts";
import { otherParty } from "./access.ts";
import type { Accept } from "./bus.ts";
import type { CopyKeeper } from "./copies.ts";
import type { DeletionHook } from "./edits.ts";
import type { NotifyHooks } from "./notification.ts";
import { commitHeld, type FenceKey, type PublishFence } from "./publish-fence.ts";

/**
 * What this instance keeps of frames relayed from others: a message frame carries the whole
 * message, so it is stored here (through the group committer) before it is delivered; a read
 * mark, an edit and a delete are applied the same way. Then history, resume, catch-up and
 * client_id retries on this instance include what was said and changed on the others while it
 * was listening. What is kept is also queued for
 * MongoDB as a copy that the origin's confirmation withdraws (see copies.ts). Typing and
 * presence frames are delivered as they come.
 */

const relayedMessage = messageSchema.extend({ type: z.literal("message"), text: z.string() });
const relayedViewed = z.object({
  type: z.literal("viewed"),
  conversation_id: z.string().optional(),
  message_id: z.string(),
  viewer_id: z.number().int(),
  viewed_at: z.string(),
});

function parse<T>(schema: z.ZodType<T>, frame: string): T | undefined {
  try {
    const r = schema.safeParse(JSON.parse(frame));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** An edit or delete frame as the change it describes; undefined when malformed or misrouted. */
function changeOf(conversationId: string, frame: string): MessageChange | undefined {
  const e = parse(messageEditedSchema, frame);
  if (e && e.conversation_id === conversationId) {
    return { kind: "edited", conversationId, messageId: e.id, text: e.text, at: Date.parse(e.edited_at) };
  }
  const d = parse(messageDeletedSchema, frame);
  if (d && d.conversation_id === conversationId) {
    return { kind: "deleted", conversationId, messageId: d.id, at: Date.parse(d.deleted_at) };
  }
  return undefined;
}

/** Keeps a frame another instance replicated, with the conversation it belongs to; true once held here. */
export type KeepReplica = (
  conversation: Conversation,
  kind: "message" | "viewed",
  frame: string,
) => Promise<boolean>;

export function createRelay(deps: {
  store: ChatStore;
  committer: GroupCommitter;
  /** Holds what is new here from its commit until the bus delivers it (same turn). */
  fence: PublishFence;
  copies: CopyKeeper;
  deletions: DeletionHook;
  /** A relayed read mark ends this instance's notification cycle it covers, in the same commit. */
  notify?: Pick<NotifyHooks, "viewed">;
}) {
  const { store, committer, copies, fence } = deps;

  /**
   * Commits `write`, holding `key` when it stored something new. The release runs as the
   * promise settles, and the bus delivers in the microtasks that follow: no socket can read
   * the backlog in between.
   */
  const heldWhile = <T>(conversationId: string, key: FenceKey, write: () => T, fresh: (r: T) => boolean) =>
    commitHeld(fence, committer.submit, conversationId, key, write, fresh).then((r) => {
      if (fresh(r)) fence.release(conversationId, key);
      return r;
    });

  /** Resolves true when the message was new here; `first` runs in the same transaction, before it. */
  const keepMessage = (
    conversationId: string,
    frame: string,
    first?: () => void,
  ): Promise<boolean> | false => {
    const msg = parse(relayedMessage, frame);
    if (!msg || msg.conversation_id !== conversationId) return false;
    const write = () => {
      first?.();
      return store.keepRelayedMessageWithAttachments(
        {
          id: msg.id,
          conversationId,
          senderId: msg.sender_id,
          text: msg.text,
          createdAt: Date.parse(msg.created_at),
          clientId: msg.client_id,
          replyTo: msg.reply_to,
          // Metadata only: this instance serves the bytes from GridFS once the sender's has copied them.
          attachments: msg.attachments,
        },
        copies.dueAt("message", msg.id),
      );
    };
    return heldWhile(conversationId, { kind: "message", id: msg.id }, write, (fresh) => fresh);
  };

  /** Resolves true when the mark changed something here; undefined for a frame that is not one. */
  const keepViewed = (
    conversation: Conversation,
    frame: string,
    first?: () => void,
  ): Promise<boolean> | undefined => {
    const v = parse(relayedViewed, frame);
    if (!v || (v.conversation_id !== undefined && v.conversation_id !== conversation.id)) return undefined;
    const mark = {
      conversationId: conversation.id,
      senderId: otherParty(conversation, v.viewer_id),
      viewerId: v.viewer_id,
      upToId: v.message_id,
      viewedAt: Date.parse(v.viewed_at),
    };
    return committer
      .submit(() => {
        first?.();
        const changed = store.markViewed(
          mark.conversationId,
          mark.senderId,
          mark.viewerId,
          mark.upToId,
          mark.viewedAt,
          "relayed",
          copies.dueAt("viewed", copyKey("viewed", mark)),
        );
        deps.notify?.viewed(mark.conversationId, mark.viewerId, mark.upToId);
        return changed;
      })
      .then((changed) => changed > 0);
  };

  /** Applied here without an outbox row; delivered when it changed something, or when live. */
  const applyChange = (c: MessageChange, replay: boolean) =>
    heldWhile(
      c.conversationId,
      { kind: "change", id: c.messageId },
      () =>
        c.kind === "edited"
          ? store.editMessage(c.conversationId, c.messageId, c.text, c.at, "relayed")
          : store.deleteMessage(c.conversationId, c.messageId, c.at, "relayed"),
      (changed) => changed !== null,
    ).then((changed) => {
      if (changed && c.kind === "deleted") {
        deps.deletions.emit({
          conversationId: c.conversationId,
          messageId: c.messageId,
          origin: "relayed",
        });
      }
      return changed !== null || !replay;
    });

  const accept: Accept = (conversationId, frame, replay, kind) => {
    // Deliver only what was new here: a replay of something already relayed is dropped.
    if (kind === "message") return keepMessage(conversationId, frame);
    if (kind === "message_edited" || kind === "message_deleted") {
      const change = changeOf(conversationId, frame);
      return change ? applyChange(change, replay) : false;
    }
    if (kind === "viewed") {
      const conversation = store.conversation(conversationId);
      const kept = conversation ? keepViewed(conversation, frame) : undefined;
      return kept ? kept.then((changed) => changed || !replay) : !replay;
    }
    return !replay;
  };

  const keepReplica: KeepReplica = async (conversation, kind, frame) => {
    // The conversation too, in the same transaction: an instance that never had a socket in it
    // holds it from here on, and its copy reaches MongoDB if the origin's never does.
    const first = () =>
      store.keepRelayedConversation(conversation, copies.dueAt("conversation", conversation.id));
    const kept =
      kind === "message"
        ? keepMessage(conversation.id, frame, first)
        : keepViewed(conversation, frame, first);
    if (kept === false || kept === undefined) return false;
    await kept;
    return true;
  };

  return { accept, keepReplica };
}
