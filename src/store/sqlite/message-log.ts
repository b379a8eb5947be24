import type { Database } from "bun:sqlite";
import type { NewMessage } from "../../model/types.ts";

/**
 * New messages of busy conversations are appended to `message_log` in arrival order and moved
 * into `messages` later, one conversation's batch at a time.
 *
 * Why: `messages` is clustered by conversation, so a new message lands on its conversation's
 * leaf page, and with many conversations each message of a commit dirties a page of its own
 * (two on average, counting splits). Every dirtied page is written whole to the WAL and synced
 * before the ack: 8 KiB a message. Appending to the log dirties its last page once per commit;
 * moving 32 messages of one conversation dirties their leaf once. The sync covers the log, so a
 * message is as durable as before when it is acked; the move itself need not be synced (a crash
 * undoes a move whole, and the log still holds the rows). See docs/performance-log.md, "Messages
 * through a log".
 *
 * The rule that keeps SQL exact: every reader of `messages` calls `settle(conversation)` first,
 * or `settleAll()` when it reads across conversations. A quiet conversation's message goes
 * straight to `messages` (append returns false): a batch needs more messages soon after.
 *
 * The log's rows are trimmed from the front, below the oldest row still to move, so a trim
 * deletes whole pages rather than a row here and there.
 */

/** Schema step 8. No index but the seq: rows are appended, read by seq and trimmed from the front. */
export const MESSAGE_LOG_SCHEMA = `
CREATE TABLE IF NOT EXISTS message_log (
  seq INTEGER PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  id TEXT NOT NULL,
  sender_id INTEGER NOT NULL,
  text TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  client_id TEXT,
  reply_to TEXT,
  attachments TEXT
);`;

/** A conversation's logged rows move once it has this many (a leaf page holds ~30). */
export const LOG_BATCH = 32;
/** ...or once its oldest logged row is this old, so a conversation that slows down is moved too. */
export const LOG_MAX_AGE_MS = 1000;
/**
 * A conversation is busy when it had LOG_BUSY_MESSAGES messages within the last one or two of
 * these windows: only then is its next one logged. A slower one would move its rows one or two
 * at a time, which costs more than a straight insert (measured: 5,000 conversations at 1 msg/s).
 */
export const LOG_BUSY_MS = 200;
export const LOG_BUSY_MESSAGES = 2;
/**
 * Rows waiting to move, across conversations, past which the oldest conversation moves with each
 * append, whatever its age. Well above busy conversations times LOG_BATCH: at 8,192, 500 busy
 * conversations (up to 31 rows each) kept the log over it, and every append moved a half-batch.
 */
export const LOG_MAX_ROWS = 65_536;
/** Conversations moved by age at most per append, so no one commit carries a long run of moves. */
const MOVES_PER_APPEND = 4;

/** A new message's columns, in the order both `messages` and `message_log` take them. */
export type NewMessageColumns = [
  string,
  string,
  number,
  string,
  number,
  string | null,
  string | null,
  string | null,
];
export const newMessageColumns = (m: NewMessage, attachments: string | null): NewMessageColumns => [
  m.conversationId,
  m.id,
  m.senderId,
  m.text,
  m.createdAt,
  m.clientId ?? null,
  m.replyTo ?? null,
  attachments,
];

interface Waiting {
  conversationId: string;
  seqs: number[];
  firstAt: number;
  moved: boolean;
}

export interface MessageLogOptions {
  now?: () => number;
  /** LOG_MAX_ROWS unless a test wants it small. */
  maxRows?: number;
}

export function createMessageLog(db: Database, opts: MessageLogOptions = {}) {
  const now = opts.now ?? Date.now;
  const maxRows = opts.maxRows ?? LOG_MAX_ROWS;
  const q = {
    append: db.query<null, [number, ...NewMessageColumns]>(
      `INSERT INTO message_log (seq, conversation_id, id, sender_id, text, created_at, client_id, reply_to, attachments)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // DO NOTHING: a row moved before a crash and not trimmed yet is moved again by resync().
    move: db.query<null, [string]>(
      `INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id, reply_to, attachments)
       SELECT conversation_id, id, sender_id, text, created_at, client_id, reply_to, attachments
       FROM message_log WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY id
       ON CONFLICT DO NOTHING`,
    ),
    trim: db.query<null, [number]>("DELETE FROM message_log WHERE seq < ?"),
    scrub: db.query<null, [number, string, string]>(
      "UPDATE message_log SET text = '', attachments = NULL WHERE seq >= ? AND conversation_id = ? AND id = ?",
    ),
    all: db.query<{ seq: number; conversation_id: string }, []>(
      "SELECT seq, conversation_id FROM message_log ORDER BY seq",
    ),
  };
  // A move outside a transaction commits without a sync of its own: the rows are durable in the log.
  const full = (db.query<{ synchronous: number }, []>("PRAGMA synchronous").get()?.synchronous ?? 0) >= 2;

  const waiting = new Map<string, Waiting>();
  /** Waiting conversations in the order of their first row; moved ones are skipped at the head. */
  let queue: Waiting[] = [];
  let head = 0;
  let rows = 0;
  let nextSeq = 1;
  /** Every row below this seq has been trimmed. */
  let trimmedBelow = 1;
  /** Messages per conversation in this window and the one before (two maps, swapped). */
  let counts = new Map<string, number>();
  let previous = new Map<string, number>();
  let windowStart = now();

  const isBusy = (conversationId: string, at: number): boolean => {
    if (at - windowStart >= LOG_BUSY_MS) {
      previous = at - windowStart >= 2 * LOG_BUSY_MS ? new Map() : counts;
      counts = new Map();
      windowStart = at;
    }
    const n = counts.get(conversationId) ?? 0;
    counts.set(conversationId, n + 1);
    return n + (previous.get(conversationId) ?? 0) >= LOG_BUSY_MESSAGES;
  };

  /** The conversation that has waited longest, once moved ones are dropped from the head. */
  const oldest = (): Waiting | undefined => {
    while (head < queue.length && queue[head]!.moved) head++;
    if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    return queue[head];
  };

  /** Trims the log below the oldest row still waiting. */
  const trim = (): void => {
    const floor = oldest()?.seqs[0] ?? nextSeq;
    if (floor <= trimmedBelow) return;
    q.trim.run(floor);
    trimmedBelow = floor;
  };

  const move = (w: Waiting): void => {
    q.move.run(JSON.stringify(w.seqs));
    w.moved = true;
    waiting.delete(w.conversationId);
    rows -= w.seqs.length;
  };

  /** Runs `fn` in the caller's transaction, or in one of its own that skips the sync. */
  const inTransaction = (fn: () => void): void => {
    if (db.inTransaction) {
      fn();
      return;
    }
    if (full) db.run("PRAGMA synchronous = NORMAL");
    try {
      db.transaction(fn)();
    } catch (err) {
      self.resync();
      throw err;
    } finally {
      if (full) db.run("PRAGMA synchronous = FULL");
    }
  };

  /** Appends the row and counts it as waiting; a conversation with a batch's worth moves now. */
  const log = (
    m: NewMessage,
    attachments: string | null,
    waitingRow: Waiting | undefined,
    at: number,
  ): void => {
    const seq = nextSeq;
    q.append.run(seq, ...newMessageColumns(m, attachments));
    nextSeq = seq + 1;
    let w = waitingRow;
    if (!w) {
      w = { conversationId: m.conversationId, seqs: [], firstAt: at, moved: false };
      waiting.set(m.conversationId, w);
      queue.push(w);
    }
    w.seqs.push(seq);
    rows++;
    if (w.seqs.length >= LOG_BATCH) move(w);
  };

  const self = {
    /**
     * Logs the message if its conversation is busy, inside the caller's transaction; false when
     * it is quiet, and the caller inserts the row into `messages` itself.
     */
    append(m: NewMessage, attachments: string | null): boolean {
      const at = now();
      const w = waiting.get(m.conversationId);
      const logged = isBusy(m.conversationId, at) || w !== undefined;
      if (logged) log(m, attachments, w, at);
      // A straight insert moves what is due too: traffic that slows down still moves the rest.
      for (let n = 0; n < MOVES_PER_APPEND; n++) {
        const due = oldest();
        if (due === undefined || due.firstAt > at - LOG_MAX_AGE_MS) break;
        move(due);
      }
      const over = rows > maxRows ? oldest() : undefined;
      if (over) move(over);
      trim();
      return logged;
    },

    /** Moves the conversation's logged rows into `messages`: call before reading them there. */
    settle(conversationId: string): void {
      const w = waiting.get(conversationId);
      if (!w) return;
      inTransaction(() => {
        move(w);
        trim();
      });
    },

    /** Moves every logged row and empties the log: before reading across conversations. */
    settleAll(): void {
      if (rows === 0 && trimmedBelow >= nextSeq) return;
      inTransaction(() => {
        for (const w of waiting.values()) move(w);
        trim();
      });
    },

    /** Erases a deleted message's text from a logged row that moved but is not trimmed yet. */
    scrub(conversationId: string, id: string): void {
      if (trimmedBelow < nextSeq) q.scrub.run(trimmedBelow, conversationId, id);
    },

    /**
     * Reads what waits from the log table itself: at open (rows a crash left), and after a
     * transaction that may have moved rows rolled back. Rows moved already move again as no-ops.
     */
    resync(): void {
      waiting.clear();
      queue = [];
      head = 0;
      rows = 0;
      let first: number | undefined;
      for (const r of q.all.iterate()) {
        first ??= r.seq;
        let w = waiting.get(r.conversation_id);
        if (!w) {
          // Due at once: nothing says how long these have waited.
          w = {
            conversationId: r.conversation_id,
            seqs: [],
            firstAt: Number.NEGATIVE_INFINITY,
            moved: false,
          };
          waiting.set(r.conversation_id, w);
          queue.push(w);
        }
        w.seqs.push(r.seq);
        rows++;
        nextSeq = Math.max(nextSeq, r.seq + 1);
      }
      trimmedBelow = first ?? nextSeq;
    },

    stats(): { rows: number; conversations: number } {
      return { rows, conversations: waiting.size };
    },
  };
  self.resync();
  return self;
}

export type MessageLog = ReturnType<typeof createMessageLog>;
