import type { Database } from "bun:sqlite";
import { AppError } from "../../errors.ts";
import type { AttachmentRef } from "../../model/types.ts";

/**
 * Attachment metadata in SQLite, beside the messages that point at it. A row is either
 * uploaded here (`origin = 'here'`, bytes on this volume until evicted) or learnt from a message
 * another instance relayed (`'relayed'`, bytes only in GridFS). The bytes themselves live in the
 * blob store, named by sha256; several rows may share one blob.
 */

export interface AttachmentRow extends AttachmentRef {
  conversationId: string;
  uploaderId: number;
  /** Null for metadata learnt from another instance until GridFS tells it. */
  sha256: string | null;
  createdAt: number;
  messageId: string | null;
  origin: "here" | "relayed";
  /** 1 once GridFS confirmed the copy: from then on the local bytes may be evicted. */
  flushed: boolean;
}

export const MAX_ATTACHMENTS_PER_MESSAGE = 10;

export const ATTACHMENTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS attachments (
  id TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  uploader_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  mime TEXT NOT NULL,
  sha256 TEXT,
  created_at INTEGER NOT NULL,
  message_id TEXT,
  origin TEXT NOT NULL,
  flushed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- The sweep of uploads never sent, and "is this blob still used" when one goes.
CREATE INDEX IF NOT EXISTS attachments_unsent ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX IF NOT EXISTS attachments_by_sha256 ON attachments (sha256);
CREATE INDEX IF NOT EXISTS attachments_by_message ON attachments (conversation_id, message_id);
`;

interface Row {
  id: string;
  conversation_id: string;
  uploader_id: number;
  name: string;
  size: number;
  mime: string;
  sha256: string | null;
  created_at: number;
  message_id: string | null;
  origin: "here" | "relayed";
  flushed: number;
}

const toRow = (r: Row): AttachmentRow => ({
  id: r.id,
  conversationId: r.conversation_id,
  uploaderId: r.uploader_id,
  name: r.name,
  size: r.size,
  mime: r.mime,
  sha256: r.sha256,
  createdAt: r.created_at,
  messageId: r.message_id,
  origin: r.origin,
  flushed: r.flushed === 1,
});

export const toRef = (a: AttachmentRef): AttachmentRef => ({
  id: a.id,
  name: a.name,
  size: a.size,
  mime: a.mime,
});

export type AttachmentStore = ReturnType<typeof createAttachmentTable>;

export function createAttachmentTable(db: Database) {
  const q = {
    insert: db.query<
      null,
      [string, string, number, string, number, string, string | null, number, string | null, string, number]
    >(
      `INSERT INTO attachments (id, conversation_id, uploader_id, name, size, mime, sha256, created_at, message_id, origin, flushed)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    byId: db.query<Row, [string]>("SELECT * FROM attachments WHERE id = ?"),
    bind: db.query<null, [string, string]>("UPDATE attachments SET message_id = ? WHERE id = ?"),
    ofMessage: db.query<Row, [string, string]>(
      "SELECT * FROM attachments WHERE conversation_id = ? AND message_id = ?",
    ),
    unsentBefore: db.query<Row, [number, number]>(
      "SELECT * FROM attachments WHERE message_id IS NULL AND created_at < ? LIMIT ?",
    ),
    remove: db.query<null, [string]>("DELETE FROM attachments WHERE id = ?"),
    shaUsed: db.query<{ one: number }, [string]>("SELECT 1 AS one FROM attachments WHERE sha256 = ? LIMIT 1"),
    flushed: db.query<null, [string]>("UPDATE attachments SET flushed = 1 WHERE id = ?"),
    learnSha: db.query<null, [string, string]>(
      "UPDATE attachments SET sha256 = coalesce(sha256, ?) WHERE id = ?",
    ),
  };

  return {
    /** An upload made here, not yet sent in a message. */
    insertUpload(a: Omit<AttachmentRow, "messageId" | "origin" | "flushed">): void {
      q.insert.run(
        a.id,
        a.conversationId,
        a.uploaderId,
        a.name,
        a.size,
        a.mime,
        a.sha256,
        a.createdAt,
        null,
        "here",
        0,
      );
    },

    get(id: string): AttachmentRow | null {
      const r = q.byId.get(id);
      return r ? toRow(r) : null;
    },

    /**
     * The refs a message by `senderId` may carry: each id the sender's own upload into this
     * conversation, not yet sent. Only reads, and throws before any write (the group commit has
     * no savepoints), in the order given.
     */
    check(ids: readonly string[], conversationId: string, senderId: number): AttachmentRef[] {
      if (ids.length > MAX_ATTACHMENTS_PER_MESSAGE) {
        throw new AppError(
          400,
          "bad_request",
          `attachments: at most ${MAX_ATTACHMENTS_PER_MESSAGE} per message`,
        );
      }
      if (new Set(ids).size !== ids.length)
        throw new AppError(400, "bad_request", "attachments: an id is repeated");
      const refs: AttachmentRef[] = [];
      for (const id of ids) {
        const r = q.byId.get(id);
        // Someone else's upload, or one into another conversation, does not exist for this sender.
        if (r?.origin !== "here" || r.uploader_id !== senderId || r.conversation_id !== conversationId) {
          throw new AppError(404, "not_found", `attachments: no upload ${id} by you in this conversation`);
        }
        if (r.message_id !== null) throw new AppError(409, "conflict", `attachments: ${id} was already sent`);
        refs.push(toRef(toRow(r)));
      }
      return refs;
    },

    /** After check() and the message's insert, in the same transaction. */
    bind(ids: readonly string[], messageId: string): void {
      for (const id of ids) q.bind.run(messageId, id);
    },

    /** Metadata of attachments in a message another instance accepted: bytes come from GridFS. */
    keepRelayed(
      refs: readonly AttachmentRef[],
      conversationId: string,
      senderId: number,
      messageId: string,
      at: number,
    ): void {
      for (const a of refs) {
        q.insert.run(
          a.id,
          conversationId,
          senderId,
          a.name,
          a.size,
          a.mime,
          null,
          at,
          messageId,
          "relayed",
          0,
        );
      }
    },

    ofMessage(conversationId: string, messageId: string): AttachmentRow[] {
      return q.ofMessage.all(conversationId, messageId).map(toRow);
    },

    unsentBefore(at: number, limit: number): AttachmentRow[] {
      return q.unsentBefore.all(at, limit).map(toRow);
    },

    /** Drops the row; true when no other row shares its blob (so the bytes may go too). */
    remove(id: string): { lastOfBlob: boolean; sha256: string | null } {
      const r = q.byId.get(id);
      q.remove.run(id);
      if (!r?.sha256) return { lastOfBlob: false, sha256: null };
      return { lastOfBlob: q.shaUsed.get(r.sha256) === null, sha256: r.sha256 };
    },

    markFlushed(id: string): void {
      q.flushed.run(id);
    },

    learnSha256(id: string, sha256: string): void {
      q.learnSha.run(sha256, id);
    },

    isBlobUsed(sha256: string): boolean {
      return q.shaUsed.get(sha256) !== null;
    },
  };
}
