/**
 * The shapes every layer shares: who a conversation is about, a conversation, a message.
 * This module imports nothing, so anyone may depend on it without making a circle.
 * Times are epoch milliseconds; they become ISO strings at the edge (protocol/wire.ts).
 */

/** The three people a conversation is about. */
export interface Parties {
  lessonId: number;
  mentorId: number;
  studentId: number;
}

export interface Conversation extends Parties {
  id: string;
  createdAt: number;
}

export interface StoredMessage {
  id: string;
  conversationId: string;
  senderId: number;
  text: string;
  createdAt: number;
  clientId: string | null;
  viewedBy: number | null;
  viewedAt: number | null;
  /** Absent or empty: a text-only message. */
  attachments?: AttachmentRef[];
}

export interface NewMessage {
  id: string;
  conversationId: string;
  senderId: number;
  text: string;
  createdAt: number;
  clientId?: string;
  attachments?: AttachmentRef[];
}

/** What a message carries of each attachment; the bytes are fetched by id. */
export interface AttachmentRef {
  id: string;
  name: string;
  size: number;
  mime: string;
}

/** A read mark: `viewerId` read every message of `senderId` up to and including `upToId`. */
export interface ViewedMark {
  conversationId: string;
  /** Whose messages were marked: the other participant. */
  senderId: number;
  viewerId: number;
  upToId: string;
  viewedAt: number;
}

export interface ConversationSummary extends Conversation {
  lastMessage: StoredMessage | null;
  unreadCount: number;
}

export interface ConversationFilter {
  mentorId?: number;
  studentId?: number;
  lessonId?: number;
}
