import type { OutboxKind } from "../../model/outbox.ts";
import type { Conversation, NewMessage, StoredMessage } from "../../model/types.ts";
import { isStorageFailure } from "../storage-errors.ts";
import { createAttachmentTable } from "./attachments.ts";
import { createChangeFeed } from "./change-feed.ts";
import { createClientIdIndex } from "./client-ids.ts";
import { createConversations } from "./conversations.ts";
import { createEdits } from "./edits.ts";
import { createLatestPages } from "./latest-pages.ts";
import { createMessageLog } from "./message-log.ts";
import { createMessages } from "./messages.ts";
import { createNotifyCycles } from "./notify.ts";
import { openDatabase, type Synchronous } from "./open.ts";
import { createOutbox } from "./outbox.ts";
import { createPresenceTable } from "./presence.ts";
import { createRetentionStore } from "./retention.ts";
import { createWalSync } from "./wal-sync.ts";

/**
 * The local store: conversations, messages, read marks, last-seen times and the outbox of
 * durable work. A message is durable here (WAL, synchronous=FULL by default) before anyone
 * hears of it. The database handle stays inside this folder.
 */

export interface OpenOptions {
  path: string;
  synchronous?: Synchronous;
  /** The outbox kinds some handler reads; entries of other kinds are not written (none: no outbox). */
  outboxKinds?: readonly OutboxKind[];
  /**
   * With FULL: commits do not wait for the disk; the caller syncs the WAL with `syncWal` (off
   * the event loop) before it tells anyone, and checkpoints run on their own thread.
   */
  syncOffLoop?: boolean;
  /** Memory for the client_id sets (client-ids.ts) before cold conversations' are dropped. */
  clientIdBudgetBytes?: number;
  /** The clock of the message log's batching (message-log.ts); tests hold it still. */
  now?: () => number;
}

export type ChatStore = ReturnType<typeof openStore>;

export function openStore(opts: OpenOptions) {
  const offLoop =
    opts.syncOffLoop === true && (opts.synchronous ?? "FULL") === "FULL" && opts.path !== ":memory:";
  const db = openDatabase(opts.path, opts.synchronous, offLoop);
  const wal = offLoop ? createWalSync(opts.path) : undefined;
  const outbox = createOutbox(db, new Set(opts.outboxKinds ?? []));
  const pages = createLatestPages();
  const log = createMessageLog(db, { now: opts.now });
  // What a crash left in the log moves now. On a full disk it stays there, and each read of
  // its conversation tries the move again (and fails as the disk does).
  try {
    log.settleAll();
  } catch (err) {
    if (!isStorageFailure(err)) throw err;
  }
  /**
   * A transaction that rolled back may have undone moves out of the log the log already counted
   * as done: it reads its table again.
   */
  const atomically = <T>(fn: () => T): T => {
    try {
      return db.transaction(fn)();
    } catch (err) {
      log.resync();
      throw err;
    }
  };
  const conversations = createConversations(db, outbox, pages, log);
  const feed = createChangeFeed(db, log);
  const retention = createRetentionStore(db, pages, log);
  const clientIds = createClientIdIndex(db, {
    budgetBytes: opts.clientIdBudgetBytes,
    beforeLoad: log.settle,
  });
  const messages = createMessages(
    db,
    log,
    outbox,
    pages,
    feed,
    { any: retention.anyEvictedClientIds },
    clientIds,
  );
  const attachments = createAttachmentTable(db);
  const cycles = createNotifyCycles(db, outbox, log);
  return {
    ...conversations,
    ...messages,
    ...createEdits(db, outbox, pages, feed, log),
    changesAfter: feed.changesAfter,
    ...cycles,

    /** Adopts MongoDB's id for a conversation; its notification cycles move with it. */
    remapConversation(oldId: string, newId: string): void {
      atomically(() => {
        conversations.remapConversation(oldId, newId);
        cycles.moveCycles(oldId, newId);
      });
      clientIds.forget(oldId);
      clientIds.forget(newId);
    },
    ...createPresenceTable(db),
    retention,
    outboxBatch: outbox.outboxBatch,
    outboxConfirm: outbox.outboxConfirm,
    outboxStats: outbox.outboxStats,
    enqueue: outbox.enqueue,
    outboxCancel: outbox.cancel,
    outboxCancelMany: outbox.cancelMany,
    outboxNextDue: outbox.nextDue,
    outboxWants: outbox.wants,
    attachments,
    clientIdStats: clientIds.stats,

    /**
     * insertMessage, with the sender's uploads bound to the message. A retry of a message
     * already stored (same client_id) is answered with it before the uploads are checked: they
     * are bound to it already. Must run inside the group commit's transaction.
     */
    sendMessage(
      m: NewMessage,
      attachmentIds: readonly string[],
    ): { message: StoredMessage; duplicate: boolean } {
      if (attachmentIds.length === 0) return messages.insertMessage(m);
      if (m.clientId !== undefined) {
        const prior = messages.messageByClientId(m.conversationId, m.senderId, m.clientId);
        if (prior) return { message: prior, duplicate: true };
      }
      const refs = attachments.check(attachmentIds, m.conversationId, m.senderId);
      const result = messages.insertMessage({ ...m, attachments: refs });
      attachments.bind(attachmentIds, result.message.id);
      return result;
    },

    /** A relayed message and the metadata of its attachments (their bytes stay in GridFS). */
    keepRelayedMessageWithAttachments(m: NewMessage, copyDueAt?: number): boolean {
      const fresh = messages.keepRelayedMessage(m, copyDueAt);
      if (fresh && m.attachments?.length) {
        attachments.keepRelayed(m.attachments, m.conversationId, m.senderId, m.id, m.createdAt);
      }
      return fresh;
    },

    /**
     * Copies what MongoDB already holds into the local store, with no outbox entries (it is
     * there already).
     */
    importHistory(conversation: Conversation | null, list: StoredMessage[]): void {
      atomically(() => {
        if (conversation) conversations.importConversation(conversation);
        messages.importMessages(list);
      });
    },

    transaction: atomically,
    messageLogStats: log.stats,

    healthy(): boolean {
      try {
        db.query("SELECT 1").get();
        return true;
      } catch {
        return false;
      }
    },

    /** Copies what it can of the WAL back into the database, without waiting for anyone. */
    checkpointPassive(): void {
      db.run("PRAGMA wal_checkpoint(PASSIVE)");
    },

    /** Present when commits wait for it (`syncOffLoop`): everything committed is on disk after it. */
    syncWal: wal?.sync,
    /** `syncWal`, blocking: for a small batch on a quiet loop. */
    syncWalNow: wal?.syncNow,

    close(): void {
      // Not needed for safety (the next open moves what is left), but leaves the file tidy.
      try {
        log.settleAll();
      } catch {
        // A full disk: the log keeps the rows for the next open.
      }
      wal?.close();
      db.close(false);
    },
  };
}
