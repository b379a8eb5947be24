import { OBJECT_ID_RE } from "../ids.ts";
import type { Logger } from "../log.ts";
import type { Conversation, Parties } from "../model/types.ts";
import type { MongoStore } from "./mongo.ts";
import type { ChatStore } from "./sqlite/index.ts";

/**
 * Reads MongoDB through into the local store, so an instance that did not write a conversation
 * (a fresh volume after a redeploy, another instance, the original Go service) still serves its
 * whole history. SQLite keeps everything it ever saw; MongoDB fills in what it did not.
 *
 * Every call is best effort and bounded: when MongoDB is down or slow, the answer comes from
 * SQLite alone after at most `timeoutMs`, and nothing waits on MongoDB while it is known down.
 */

export interface ReadThroughOptions {
  store: ChatStore;
  mongo: MongoStore;
  logger: Logger;
  timeoutMs: number;
}

/** Messages imported when a conversation is first seen here; older pages come on demand. */
const FIRST_SIGHT_PAGE = 200;
/** Resume after a cursor asks MongoDB for at most this many newer messages. */
const RESUME_WINDOW = 1000;
const CONVERSATIONS_LIMIT = 500;

export type ReadThrough = ReturnType<typeof createReadThrough>;

export function createReadThrough(opts: ReadThroughOptions) {
  const { store, mongo, logger, timeoutMs } = opts;

  /** Undefined when MongoDB is down, slow or failing: the caller falls back to SQLite. */
  const ask = async <T>(what: string, op: () => Promise<T>): Promise<T | undefined> => {
    if (!mongo.mayAnswer) return undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        op(),
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), timeoutMs);
        }),
      ]);
    } catch (err) {
      logger.debug("MongoDB read skipped", { what, error: err });
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  };

  const importLatest = async (c: Conversation) => {
    const page = await ask("first page", () => mongo.page(c.id, { limit: FIRST_SIGHT_PAGE }, timeoutMs));
    store.importHistory(c, page ?? []);
  };

  return {
    /**
     * Get-or-create for a connect. A conversation new here takes the id MongoDB already has for
     * its parties, if any (the original service's random ids, or another instance's), so nothing
     * needs remapping later; otherwise `id` (deterministic) is used.
     */
    async open(id: string, parties: Parties, now: number, since?: string): Promise<Conversation> {
      const local = store.conversationFor(parties);
      if (local) {
        if (since !== undefined) await this.syncPage(local.id, { after: since, limit: RESUME_WINDOW });
        return local;
      }
      const remote = await ask("conversation by parties", () => mongo.findConversation(parties, timeoutMs));
      if (remote) await importLatest(remote);
      return store.openConversation(remote?.id ?? id, parties, now);
    },

    /** A conversation by id, from SQLite or else from MongoDB (then kept here). */
    async conversation(id: string): Promise<Conversation | null> {
      const local = store.conversation(id);
      if (local || !OBJECT_ID_RE.test(id)) return local;
      const remote = await ask("conversation by id", () => mongo.conversationById(id, timeoutMs));
      if (!remote) return null;
      await importLatest(remote);
      return store.conversation(remote.id);
    },

    /** Brings MongoDB's copy of one history page into SQLite, so the local page is the union. */
    async syncPage(
      conversationId: string,
      window: { before?: string; after?: string; limit: number },
    ): Promise<void> {
      const page = await ask("history page", () => mongo.page(conversationId, window, timeoutMs));
      if (page && page.length > 0) store.importHistory(null, page);
    },

    /** The user's conversations that MongoDB knows and SQLite does not yet. */
    async syncConversationsOf(userId: number): Promise<void> {
      const list = await ask("conversations of user", () =>
        mongo.conversationsOf(userId, timeoutMs, CONVERSATIONS_LIMIT),
      );
      for (const c of list ?? []) {
        if (!store.conversation(c.id) && !store.conversationFor(c)) await importLatest(c);
      }
    },
  };
}
