import type { ConversationSummary, MessageChange, StoredMessage } from "../model/types.ts";
import type { Message, MessageDeleted, MessageEdited, OutboundFrame } from "./frames.ts";

/** The stored shapes as clients see them: snake_case, ISO times, absent fields left out. */

let isoSecond = Number.NaN;
let isoPrefix = "";

/**
 * `new Date(ms).toISOString()`, with the part up to the second kept from the last call: every
 * message frame carries its creation time, and messages come in runs within one second.
 */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    isoSecond = second;
  }
  const milli = ms - second * 1000;
  return `${isoPrefix}${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
}

export function toWireMessage(m: StoredMessage): Message {
  const out: Message = {
    id: m.id,
    conversation_id: m.conversationId,
    sender_id: m.senderId,
    created_at: isoTime(m.createdAt),
  };
  if (m.deletedAt === null) out.text = m.text;
  if (m.clientId !== null) out.client_id = m.clientId;
  if (m.viewedBy !== null) out.viewed_by = m.viewedBy;
  if (m.viewedAt !== null) out.viewed_at = new Date(m.viewedAt).toISOString();
  if (m.replyTo !== null) out.reply_to = m.replyTo;
  if (m.editedAt !== null && m.deletedAt === null) out.edited_at = new Date(m.editedAt).toISOString();
  if (m.deletedAt !== null) {
    out.deleted = true;
    out.deleted_at = new Date(m.deletedAt).toISOString();
  }
  if (m.attachments?.length && m.deletedAt === null) out.attachments = m.attachments;
  return out;
}

type Ack = Extract<OutboundFrame, { type: "ack" }>;

/**
 * The ack of a message, an edit or a delete: the message's id and time, the client_id of the
 * frame it answers, and whether it was a resend.
 */
export function ackOf(m: StoredMessage, duplicate: boolean, clientId: string | undefined): Ack {
  const ack: Ack = { type: "ack", id: m.id, created_at: isoTime(m.createdAt) };
  if (clientId !== undefined) ack.client_id = clientId;
  if (duplicate) ack.duplicate = true;
  return ack;
}

/** The frame that tells a client about an edit or a delete (live, relayed, or on catch-up). */
export function toWireChange(c: MessageChange): MessageEdited | MessageDeleted {
  const at = new Date(c.at).toISOString();
  return c.kind === "edited"
    ? {
        type: "message_edited",
        id: c.messageId,
        conversation_id: c.conversationId,
        text: c.text,
        edited_at: at,
      }
    : { type: "message_deleted", id: c.messageId, conversation_id: c.conversationId, deleted_at: at };
}

/** The REST shape of a conversation; the client SDK imports this type. */
export type ConversationJson = ReturnType<typeof toWireConversation>;

export function toWireConversation(s: ConversationSummary) {
  return {
    id: s.id,
    lesson_id: s.lessonId,
    mentor_id: s.mentorId,
    student_id: s.studentId,
    created_at: new Date(s.createdAt).toISOString(),
    last_message: s.lastMessage ? toWireMessage(s.lastMessage) : null,
    unread_count: s.unreadCount,
  };
}
