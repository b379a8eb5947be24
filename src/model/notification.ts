/**
 * Offline notifications: the platform's notification as its service reads it, a notification
 * cycle as the store keeps it, and the outbox payload that fires one. Rules live in
 * domain/notification.ts; sending in jobs/notifier.ts.
 */

/** The platform service's notification, field for field (it parses `id`/`user_id` as int64). */
export interface PlatformNotification {
  id: number;
  user_id: number;
  type: "chat_message";
  title: string;
  message: string;
  metadata: {
    conversation_id: string;
    lesson_id: number;
    sender_id: number;
    message_id: string;
    unread_count: number;
  };
  action_url: string;
  created_at: string;
}

/** One open cycle of a (conversation, recipient). */
export interface NotifyCycle {
  conversationId: string;
  recipientId: number;
  notificationId: number;
  senderId: number;
  firstMessageId: string;
  dueAt: number;
  /** Fixed at the first attempt, so every retry sends the same notification. */
  payload: PlatformNotification | null;
  /** Sinks that confirmed this notification already. */
  sinksDone: string[];
  /** When it was sent; null while pending. */
  sentAt: number | null;
}

/** The `notify` outbox entry: fire this cycle's notification at `dueAt`. */
export interface NotifyPayload {
  notificationId: number;
  conversationId: string;
  recipientId: number;
  senderId: number;
  firstMessageId: string;
  dueAt: number;
}
