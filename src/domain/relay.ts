import { z } from "zod";
import { messageSchema } from "../protocol/frames.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { ChatStore } from "../store/sqlite/index.ts";
import { otherParty } from "./access.ts";
import type { Accept } from "./bus.ts";
import type { NotifyHooks } from "./notification.ts";

/**
 * What this instance keeps of frames relayed from others: a message frame carries the whole
 * message, so it is stored here (through the group committer, without an outbox row) before
 * it is delivered; a read mark is applied the same way. Then history, resume and client_id
 * retries on this instance include what was said on the others while it was listening.
 * Typing and presence frames are delivered as they come.
 */

const relayedMessage = messageSchema.extend({ type: z.literal("message") });
const relayedViewed = z.object({
  type: z.literal("viewed"),
  message_id: z.string(),
  viewer_id: z.number().int(),
  viewed_at: z.string(),
});

export function createRelayAccept(deps: {
  store: ChatStore;
  committer: GroupCommitter;
  /** A relayed read mark ends this instance's notification cycle it covers, in the same commit. */
  notify?: Pick<NotifyHooks, "viewed">;
}): Accept {
  const { store, committer } = deps;
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
          // Metadata only: this instance serves the bytes from GridFS once the sender's has copied them.
          attachments: msg.attachments,
        }),
      );
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
