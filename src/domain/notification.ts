import type { NotifyCycle, PlatformNotification } from "../model/notification.ts";
import type { Conversation, Parties, StoredMessage } from "../model/types.ts";

/**
 * Offline notifications, as rules without I/O: what the platform's notification service is sent,
 * and when a notification cycle opens, ends, or fires. The store keeps the cycles and the outbox
 * keeps the pending work; jobs/notifier.ts does the sending.
 *
 * A cycle belongs to one (conversation, recipient). The first message the recipient has not read
 * opens it and schedules one notification; later messages join it; a read mark covering its first
 * message ends it, whether the notification is still pending (it is dropped) or was sent (the next
 * unread message opens a new cycle).
 */

export interface NotificationInput {
  id: number;
  conversation: Parties & { id: string };
  senderId: number;
  recipientId: number;
  /** The message that opened the cycle: its text is quoted, its id lets a client scroll to it. */
  first: { id: string; text: string };
  unreadCount: number;
  at: number;
}

export interface PayloadOptions {
  includeText: boolean;
  /** `NOTIFY_ACTION_URL`, with `{lesson_id}`-style placeholders. */
  actionUrl: string;
  excerptChars?: number;
}

/** How much of the message a notification quotes: enough to recognise it on a lock screen. */
export const EXCERPT_CHARS = 120;

/** The opening characters of a text on one line, cut on a code point, marked when cut. */
export function excerpt(text: string, maxChars = EXCERPT_CHARS): string {
  const flat = text.replace(/\s+/g, " ").trim();
  const points = Array.from(flat);
  return points.length <= maxChars
    ? flat
    : `${points
        .slice(0, maxChars - 1)
        .join("")
        .trimEnd()}…`;
}

export function expandActionUrl(template: string, c: Parties & { id: string }): string {
  const values: Record<string, string> = {
    lesson_id: String(c.lessonId),
    student_id: String(c.studentId),
    mentor_id: String(c.mentorId),
    conversation_id: c.id,
  };
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    values[name] === undefined ? whole : encodeURIComponent(values[name]),
  );
}

export function buildNotification(input: NotificationInput, opts: PayloadOptions): PlatformNotification {
  const { conversation: c, unreadCount } = input;
  const from = input.senderId === c.mentorId ? "your mentor" : "your student";
  const title = unreadCount > 1 ? `${unreadCount} new messages from ${from}` : `New message from ${from}`;
  const message = opts.includeText
    ? excerpt(input.first.text, opts.excerptChars)
    : `Open the lesson chat to read ${unreadCount > 1 ? "them" : "it"}.`;
  return {
    id: input.id,
    user_id: input.recipientId,
    type: "chat_message",
    title,
    message,
    metadata: {
      conversation_id: c.id,
      lesson_id: c.lessonId,
      sender_id: input.senderId,
      message_id: input.first.id,
      unread_count: unreadCount,
    },
    action_url: expandActionUrl(opts.actionUrl, c),
    created_at: new Date(input.at).toISOString(),
  };
}

/** A message accepted here opens a cycle only when its recipient has none open. */
export function opensCycle(open: Pick<NotifyCycle, "notificationId"> | null): boolean {
  return open === null;
}

/**
 * Read-up-to `upToId` ends a cycle when it covers the cycle's first message: the same rule
 * the store uses to mark messages read (`id <= upToId`), so "read" means the same everywhere.
 */
export function endsCycle(cycle: Pick<NotifyCycle, "firstMessageId">, upToId: string): boolean {
  return cycle.firstMessageId <= upToId;
}

export type FireDecision = "send" | "cancelled" | "read";

/**
 * At fire time, a pending entry is sent only if its cycle is still the open one and its first
 * message is still unread here: a read mark relayed from another instance (or one that arrived
 * while this instance was down and came back through MongoDB) has ended it otherwise.
 */
export function decideFire(
  notificationId: number,
  open: Pick<NotifyCycle, "notificationId"> | null,
  firstMessageRead: boolean,
): FireDecision {
  if (!open || open.notificationId !== notificationId) return "cancelled";
  if (firstMessageRead) return "read";
  return "send";
}

/** What the chat tells the notifier; the first two run inside the write's own transaction. */
export interface NotifyHooks {
  /** A message accepted on this instance (not one relayed from another). */
  accepted(conversation: Conversation, message: StoredMessage): void;
  /** A read mark by `viewerId` up to `upToId`, made here or relayed from another instance. */
  viewed(conversationId: string, viewerId: number, upToId: string): void;
  /** After a read mark made here is committed: tell the other instances' notifiers. */
  viewedHere(conversationId: string, viewerId: number, upToId: string): void;
}
