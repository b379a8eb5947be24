import type { OutboxKind } from "../../model/outbox.ts";
import type { Conversation, StoredMessage } from "../../model/types.ts";
import { createConversations } from "./conversations.ts";
import { createLatestPages } from "./latest-pages.ts";
import { createMessages } from "./messages.ts";
import { openDatabase, type Synchronous } from "./open.ts";
import { createOutbox } from "./outbox.ts";
import { createPresenceTable } from "./presence.ts";

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
}

export type ChatStore = ReturnType<typeof openStore>;

export function openStore(opts: OpenOptions) {
  const db = openDatabase(opts.path, opts.synchronous);
  const outbox = createOutbox(db, new Set(opts.outboxKinds ?? []));
  const pages = createLatestPages();
  const conversations = createConversations(db, outbox, pages);
  const messages = createMessages(db, outbox, pages);
  return {
    ...conversations,
    ...messages,
    ...createPresenceTable(db),
    outboxBatch: outbox.outboxBatch,
    outboxConfirm: outbox.outboxConfirm,
    outboxStats: outbox.outboxStats,
    enqueue: outbox.enqueue,
    outboxCancel: outbox.cancel,
    outboxCancelMany: outbox.cancelMany,
    outboxWants: outbox.wants,

    /**
     * Copies what MongoDB already holds into the local store, with no outbox entries (it is
     * there already).
     */
    importHistory(conversation: Conversation | null, list: StoredMessage[]): void {
      db.transaction(() => {
        if (conversation) conversations.importConversation(conversation);
        messages.importMessages(list);
      })();
    },

    transaction<T>(fn: () => T): T {
      return db.transaction(fn)();
    },

    healthy(): boolean {
      try {
        db.query("SELECT 1").get();
        return true;
      } catch {
        return false;
      }
    },

    close(): void {
      db.close(false);
    },
  };
}
