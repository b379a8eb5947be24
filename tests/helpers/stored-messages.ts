/**
 * For tests that read the service's SQLite file beside it: every message it stored, wherever it
 * is. A message of a busy conversation waits in `message_log` before it moves to `messages`
 * (src/store/sqlite/message-log.ts); a row moved but not trimmed yet is counted once.
 */
export const STORED_MESSAGES = `(
  SELECT conversation_id, id, sender_id, text, created_at, client_id FROM messages
  UNION ALL
  SELECT conversation_id, id, sender_id, text, created_at, client_id FROM message_log l
  WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = l.conversation_id AND m.id = l.id)
)`;
