import { z } from "zod";
import type { MessageChange } from "../model/types.ts";
import { messageDeletedSchema, messageEditedSchema, messageSchema } from "../protocol/frames.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { ChatStore } from "../store/sqlite/index.ts";
import { otherParty } from "./access.ts";
import type { Accept } from "./bus.ts";
import type { DeletionHook } from "./edits.ts";
import type { NotifyHooks } from "./notification.ts";

/**
 * What this instance keeps of frames relayed from others: a message frame carries the whole
 * message, so it is stored here (through the group committer, without an outbox row) before
 * it is delivered; a read mark, an edit and a delete are applied the same way. Then history,
 * resume, catch-up and client_id retries on this instance include what was said and changed on
 * the others while it was listening. Typing and presence frames are delivered as they come.
 */

const relayedMessage = messageSchema.extend({ type: z.literal("message"), text: z.string() });
const relayedViewed = z.object({
  type: z.literal("viewed"),
  message_id: z.string(),
  viewer_id: z.number().int(),
  viewed_at: z.string(),
});

export interface RelayDeps {
  store: ChatStore;
  committer: GroupCommitter;
  deletions: DeletionHook;
  /** A relayed read mark ends this instance's notification cycle it covers, in the same commit. */
  notify?: Pick<NotifyHooks, "viewed">;
}

/** An edit or delete frame as the change it describes; undefined when malformed or misrouted. */
function changeOf(conversationId: string, frame: string): MessageChange | undefined {
  const json = JSON.parse(frame);
  const e = messageEditedSchema.safeParse(json);
  if (e.success && e.data.conversation_id === conversationId) {
    const at = Date.parse(e.data.edited_at);
    return { kind: "edited", conversationId, messageId: e.data.id, text: e.data.text, at };
  }
  const d = messageDeletedSchema.safeParse(json);
  if (d.success && d.data.conversation_id === conversationId) {
    return { kind: "deleted", conversationId, messageId: d.data.id, at: Date.parse(d.data.deleted_at) };
  }
  return undefined;
}

export function createRelayAccept(deps: RelayDeps): Accept {
  const { store, committer } = deps;

  /** Applied here without an outbox row; delivered when it changed something, or when live. */
  const applyChange = (c: MessageChange, replay: boolean) =>
    committer
      .submit(() =>
        c.kind === "edited"
          ? store.editMessage(c.conversationId, c.messageId, c.text, c.at, "relayed")
          : store.deleteMessage(c.conversationId, c.messageId, c.at, "relayed"),
      )
      .then((changed) => {
        if (changed && c.kind === "deleted") {
          deps.deletions.emit({
            conversationId: c.conversationId,
            messageId: c.messageId,
            origin: "relayed",
          });
        }
        return changed !== null || !replay;
      });

  return (conversationId, frame, replay, kind) => {
    if (kind === "message") {
      const m = relayedMessage.safeParse(JSON.parse(frame));
      if (!m.success || m.data.conversation_id !== conversationId) return false;
      const msg = m.data;
      // Deliver only what was new here: a replay of something already relayed is dropped.
      return committer.submit(() =>
        store.keepRelayedMessageWithAttachments({
          id: msg.id,
          conversationId,
          senderId: msg.sender_id,
          text: msg.text,
          createdAt: Date.parse(msg.created_at),
          clientId: msg.client_id,
          replyTo: msg.reply_to,
          // Metadata only: this instance serves the bytes from GridFS once the sender's has copied them.
          attachments: msg.attachments,
        }),
      );
    }
    if (kind === "message_edited" || kind === "message_deleted") {
      const change = changeOf(conversationId, frame);
      return change ? applyChange(change, replay) : false;
    }
    if (kind === "viewed") {
      const v = relayedViewed.safeParse(JSON.parse(frame));
      const conversation = store.conversation(conversationId);
      if (!v.success || !conversation) return !replay;
      const viewedAt = Date.parse(v.data.viewed_at);
      const viewerId = v.data.viewer_id;
      return committer
        .submit(() => {
          const changed = store.markViewed(
            conversationId,
            otherParty(conversation, viewerId),
            viewerId,
            v.data.message_id,
            viewedAt,
            "relayed",
          );
          deps.notify?.viewed(conversationId, viewerId, v.data.message_id);
          return changed;
        })
        .then((changed) => changed > 0 || !replay);
    }
    return !replay;
  };
}
