import type { ConversationSummary, StoredMessage } from "../model/types.ts";
import type { Message } from "./frames.ts";

/** The stored shapes as clients see them: snake_case, ISO times, absent fields left out. */

export function toWireMessage(m: StoredMessage): Message {
  const out: Message = {
    id: m.id,
    conversation_id: m.conversationId,
    sender_id: m.senderId,
    text: m.text,
    created_at: new Date(m.createdAt).toISOString(),
  };
  if (m.clientId !== null) out.client_id = m.clientId;
  if (m.viewedBy !== null) out.viewed_by = m.viewedBy;
  if (m.viewedAt !== null) out.viewed_at = new Date(m.viewedAt).toISOString();
  if (m.attachments?.length) out.attachments = m.attachments;
  return out;
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
