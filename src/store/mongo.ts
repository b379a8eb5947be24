import { type Db, MongoBulkWriteError, MongoClient, MongoServerError, ObjectId } from "mongodb";
import type { Conversation, Parties, StoredMessage } from "../model/types.ts";

/**
 * MongoDB, the system of record, in the seed's schema. Everything here is written to be replayed:
 * the flusher may send the same outbox row twice (a lost answer, a crash before the local
 * confirm), so every write is keyed by an id made locally and a duplicate-key answer means done.
 *
 * It avoids what FerretDB (and so some deployments) cannot do: no transactions, no change
 * streams, no bulk updates whose partial failure would need per-operation results.
 */

export interface MongoOptions {
  uri: string;
  db: string;
  connectTimeoutMs: number;
  socketTimeoutMs: number;
}

export interface ConversationDoc {
  _id: ObjectId;
  lesson_id: number;
  mentor_id: number;
  student_id: number;
  created_at: Date;
}

export interface MessageDoc {
  _id: ObjectId;
  conversation_id: ObjectId;
  sender_id: number;
  text: string;
  created_at: Date;
  client_id?: string;
  /** Null in documents of the original service for unread messages. */
  viewed_by?: number | null;
  viewed_at?: Date | null;
  /** The attachments' metadata; their bytes are in the GridFS bucket `attachments` under `id`. */
  attachments?: Array<{ id: string; name: string; size: number; mime: string }>;
}

const DUPLICATE_KEY = 11000;

export type MongoStore = ReturnType<typeof openMongo>;

export function openMongo(opts: MongoOptions) {
  const build = () => {
    const client = new MongoClient(opts.uri, {
      serverSelectionTimeoutMS: opts.connectTimeoutMs,
      connectTimeoutMS: opts.connectTimeoutMs,
      socketTimeoutMS: opts.socketTimeoutMs,
      // Frequent enough that readiness notices an outage (and the end of one) within seconds.
      heartbeatFrequencyMS: Math.max(500, Math.min(5_000, opts.connectTimeoutMs)),
      maxPoolSize: 10,
      // The flusher retries on its own schedule, with backoff; a driver retry would only add latency.
      retryWrites: false,
      retryReads: false,
      appName: "lesson-chat",
    });
    // The driver's monitor sees the server come and go between our own operations.
    client.on("serverHeartbeatSucceeded", () => {
      up = true;
    });
    client.on("serverHeartbeatFailed", () => {
      up = false;
    });
    const db = client.db(opts.db);
    return {
      client,
      db,
      conversations: db.collection<ConversationDoc>("conversations"),
      messages: db.collection<MessageDoc>("messages"),
    };
  };
  // Unknown until the first contact: reads may try MongoDB (bounded) before that, not after a failure.
  let up: boolean | undefined;
  let connected = false;
  let connecting: Promise<void> | undefined;
  let indexesReady = false;
  let m = build();

  /**
   * The first connect must be explicit: when the driver's implicit connect fails (MongoDB down at
   * start), it leaves the client closed for good, and every later operation fails the same way.
   */
  const connect = async () => {
    if (connected) return;
    // Concurrent callers share one attempt, so a failure rebuilds the client once.
    connecting ??= (async () => {
      try {
        await m.client.connect();
        connected = true;
        up = true;
      } catch (err) {
        up = false;
        const dead = m.client;
        m = build();
        await dead.close(true).catch(() => {});
        throw err;
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  };

  /** Runs an operation and records whether MongoDB answered. */
  const track = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      await connect();
      const out = await op();
      up = true;
      return out;
    } catch (err) {
      if (isUnreachable(err)) up = false;
      throw err;
    }
  };

  return {
    /** Whether the last contact with MongoDB (ours or the driver's monitor) succeeded. */
    get connected(): boolean {
      return up === true;
    },
    /** Not known to be down: worth a bounded try (true before the first contact, too). */
    get mayAnswer(): boolean {
      return up !== false;
    },
    get indexesReady(): boolean {
      return indexesReady;
    },

    /** The seed's unique triple and the history index; idempotent, retried until it succeeds once. */
    async ensureIndexes(): Promise<void> {
      await connect();
      if (indexesReady) return;
      await track(async () => {
        await m.conversations.createIndex(
          { lesson_id: 1, mentor_id: 1, student_id: 1 },
          { unique: true, name: "lesson_mentor_student_unique" },
        );
        // GET /conversations on a fresh instance looks a user's conversations up by either side.
        await m.conversations.createIndex({ mentor_id: 1 }, { name: "by_mentor" });
        await m.conversations.createIndex({ student_id: 1 }, { name: "by_student" });
        await m.messages.createIndex({ conversation_id: 1, _id: 1 }, { name: "conversation_history" });
      });
      indexesReady = true;
    },

    /**
     * The database, connected, for GridFS (store/gridfs.ts). Its calls are tracked too, so a
     * GridFS failure counts as MongoDB being down.
     */
    async database(): Promise<Db> {
      return track(async () => m.db);
    },

    async ping(): Promise<void> {
      await track(() => m.db.command({ ping: 1 }));
    },

    /**
     * Makes the conversation exist. Returns the id MongoDB keeps for its triple: the same id, or a
     * different one when the triple was created elsewhere first (the original service used random ids).
     */
    async putConversation(c: Conversation): Promise<string> {
      const doc: ConversationDoc = {
        _id: new ObjectId(c.id),
        lesson_id: c.lessonId,
        mentor_id: c.mentorId,
        student_id: c.studentId,
        created_at: new Date(c.createdAt),
      };
      try {
        await track(() => m.conversations.insertOne(doc));
        return c.id;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const existing = await track(() =>
        m.conversations.findOne(
          { lesson_id: c.lessonId, mentor_id: c.mentorId, student_id: c.studentId },
          { projection: { _id: 1 } },
        ),
      );
      if (!existing) {
        // The duplicate was on _id with another triple: a 96-bit hash collision, or tampering.
        throw new Error(`conversation ${c.id} exists in MongoDB for different parties`);
      }
      return existing._id.toHexString();
    },

    /** Inserts messages; those already stored (a replay) count as done. */
    async putMessages(batch: StoredMessage[]): Promise<{ inserted: number; duplicates: number }> {
      if (batch.length === 0) return { inserted: 0, duplicates: 0 };
      const docs = batch.map(toMessageDoc);
      try {
        const res = await track(() => m.messages.insertMany(docs, { ordered: false }));
        return { inserted: res.insertedCount, duplicates: 0 };
      } catch (err) {
        if (err instanceof MongoBulkWriteError) {
          const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
          if (errors.length > 0 && errors.every((w) => w.code === DUPLICATE_KEY)) {
            return { inserted: err.insertedCount, duplicates: errors.length };
          }
        }
        throw err;
      }
    },

    /**
     * Read-up-to, as locally: only marks not yet set, so a replay changes nothing and a replayed
     * older mark cannot overwrite a newer one's time.
     */
    async markViewed(e: {
      conversationId: string;
      senderId: number;
      viewerId: number;
      upToId: string;
      viewedAt: number;
    }): Promise<number> {
      const res = await track(() =>
        m.messages.updateMany(
          {
            conversation_id: new ObjectId(e.conversationId),
            sender_id: e.senderId,
            _id: { $lte: new ObjectId(e.upToId) },
            viewed_by: null,
          },
          { $set: { viewed_by: e.viewerId, viewed_at: new Date(e.viewedAt) } },
        ),
      );
      return res.modifiedCount;
    },

    async findConversation(p: Parties, timeoutMs: number): Promise<Conversation | null> {
      const doc = await track(() =>
        m.conversations.findOne(
          { lesson_id: p.lessonId, mentor_id: p.mentorId, student_id: p.studentId },
          { maxTimeMS: timeoutMs },
        ),
      );
      return doc ? fromConversationDoc(doc) : null;
    },

    async conversationById(id: string, timeoutMs: number): Promise<Conversation | null> {
      const doc = await track(() =>
        m.conversations.findOne({ _id: new ObjectId(id) }, { maxTimeMS: timeoutMs }),
      );
      return doc ? fromConversationDoc(doc) : null;
    },

    async conversationsOf(userId: number, timeoutMs: number, limit: number): Promise<Conversation[]> {
      const docs = await track(() =>
        m.conversations
          .find({ $or: [{ mentor_id: userId }, { student_id: userId }] }, { maxTimeMS: timeoutMs })
          .limit(limit)
          .toArray(),
      );
      return docs.map(fromConversationDoc);
    },

    /** One page of history, in id order, with the same cursor meaning as the local store. */
    async page(
      conversationId: string,
      window: { before?: string; after?: string; limit: number },
      timeoutMs: number,
    ): Promise<StoredMessage[]> {
      const range: Record<string, ObjectId> = {};
      if (window.after !== undefined) range.$gt = new ObjectId(window.after);
      if (window.before !== undefined) range.$lt = new ObjectId(window.before);
      const filter = {
        conversation_id: new ObjectId(conversationId),
        ...(Object.keys(range).length > 0 ? { _id: range } : {}),
      };
      // With only `after`, the page starts right after the cursor; otherwise it is the newest end.
      const ascending = window.after !== undefined && window.before === undefined;
      const docs = await track(() =>
        m.messages
          .find(filter, { maxTimeMS: timeoutMs })
          .sort({ _id: ascending ? 1 : -1 })
          .limit(window.limit)
          .toArray(),
      );
      if (!ascending) docs.reverse();
      return docs.map(fromMessageDoc);
    },

    async close(): Promise<void> {
      await m.client.close(true);
    },
  };
}

export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/** Network-level trouble (as opposed to MongoDB refusing one write). */
function isUnreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return /Network|Timeout|ServerSelection|PoolCleared|NotConnected|Topology/i.test(err.name);
}

export function toMessageDoc(m: StoredMessage): MessageDoc {
  const doc: MessageDoc = {
    _id: new ObjectId(m.id),
    conversation_id: new ObjectId(m.conversationId),
    sender_id: m.senderId,
    text: m.text,
    created_at: new Date(m.createdAt),
  };
  if (m.clientId !== null) doc.client_id = m.clientId;
  if (m.viewedBy !== null) doc.viewed_by = m.viewedBy;
  if (m.viewedAt !== null) doc.viewed_at = new Date(m.viewedAt);
  if (m.attachments?.length)
    doc.attachments = m.attachments.map(({ id, name, size, mime }) => ({ id, name, size, mime }));
  return doc;
}

function fromConversationDoc(d: ConversationDoc): Conversation {
  return {
    id: d._id.toHexString(),
    lessonId: d.lesson_id,
    mentorId: d.mentor_id,
    studentId: d.student_id,
    createdAt: d.created_at instanceof Date ? d.created_at.getTime() : Date.now(),
  };
}

function fromMessageDoc(d: MessageDoc): StoredMessage {
  const m: StoredMessage = {
    id: d._id.toHexString(),
    conversationId: d.conversation_id.toHexString(),
    senderId: d.sender_id,
    text: d.text,
    createdAt: d.created_at instanceof Date ? d.created_at.getTime() : d._id.getTimestamp().getTime(),
    clientId: typeof d.client_id === "string" ? d.client_id : null,
    viewedBy: typeof d.viewed_by === "number" ? d.viewed_by : null,
    viewedAt: d.viewed_at instanceof Date ? d.viewed_at.getTime() : null,
  };
  if (Array.isArray(d.attachments) && d.attachments.length > 0) {
    m.attachments = d.attachments.map((a) => ({
      id: String(a.id),
      name: String(a.name),
      size: Number(a.size),
      mime: String(a.mime),
    }));
  }
  return m;
}
