import { AppError, notFound } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { BlobStore } from "../store/blobs.ts";
import type { GridStore } from "../store/gridfs.ts";
import type { AttachmentRow, AttachmentStore } from "../store/sqlite/attachments.ts";
import { sanitizeFilename } from "./filename.ts";
import { SNIFF_BYTES, sniff } from "./sniff.ts";

/**
 * Attachments end to end: an upload is sniffed, stored locally (fsync'd) and recorded with an
 * outbox entry in one commit before its 201; the outbox copies it to GridFS; a download reads
 * the local copy, then GridFS. See docs/attachments.md.
 */

/** What the HTTP layer hands over: the client's name for the file and its bytes as they arrive. */
export interface IncomingFile {
  name: string | undefined;
  chunks: AsyncIterable<Uint8Array>;
}

/** What a download serves: the metadata and a way to read any byte range of it. */
export interface OpenedAttachment {
  name: string;
  size: number;
  mime: string;
  sha256: string;
  /** Bytes [start, end). */
  read(start: number, end: number): Blob | ReadableStream<Uint8Array>;
}

export interface Uploaded {
  id: string;
  name: string;
  size: number;
  mime: string;
  sha256: string;
}

export interface AttachmentsDeps {
  store: AttachmentStore;
  blobs: BlobStore;
  /** Absent without MongoDB: then attachments live on this instance only. */
  grid?: GridStore;
  newId: () => string;
  now: () => number;
  maxBytes: number;
  allowedTypes: ReadonlySet<string>;
  /** Runs `fn` in a durable transaction (the group committer). */
  commit: <T>(fn: () => T) => Promise<T>;
  /** Inside that transaction: queue the GridFS copy / removal of an attachment. */
  enqueue: (kind: "attachment_copy" | "attachment_delete", id: string) => void;
  gridTimeoutMs: number;
  /** How long an upload may wait for a message before the sweep removes it. */
  unsentTtlMs: number;
  /** Seconds a client should wait before asking again for bytes not yet in GridFS. */
  retryAfterS: number;
  /** A blob written this recently survives a sweep (an upload of the same bytes may be in flight). */
  blobGraceMs?: number;
  logger: Logger;
}

export type Attachments = ReturnType<typeof createAttachments>;

const BLOB_GRACE_MS = 10 * 60_000;

const notYet = (retryAfterS: number) =>
  new AppError(
    503,
    "not_yet_available",
    "this attachment is still being copied from the instance it was uploaded to; retry shortly",
    retryAfterS,
  );

export function createAttachments(deps: AttachmentsDeps) {
  const { store, blobs, grid } = deps;

  /** A GridFS call that gives up in time: a slow MongoDB must not hold a download open. */
  const bounded = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("GridFS did not answer in time")), deps.gridTimeoutMs),
      ),
    ]);

  const dropRows = async (rows: AttachmentRow[], onlyUnsent: boolean) => {
    const blobsToDrop: string[] = [];
    await deps.commit(() => {
      for (const r of rows) {
        // Read again inside the transaction: a message may have sent it since the sweep looked.
        if (onlyUnsent && store.get(r.id)?.messageId !== null) continue;
        const { lastOfBlob, sha256 } = store.remove(r.id);
        if (lastOfBlob && sha256) blobsToDrop.push(sha256);
        // Uploaded here: GridFS may hold (or be about to hold) a copy. The removal is queued after
        // the copy, so the outbox's order makes a pending copy harmless.
        if (r.origin === "here") deps.enqueue("attachment_delete", r.id);
      }
    });
    // After the commit: a crash in between leaves an orphan file, never a row without bytes. A
    // blob written in the last minutes is kept: an upload of the same bytes may be about to
    // insert the row that uses it.
    for (const sha of blobsToDrop)
      if (!store.isBlobUsed(sha)) await blobs.remove(sha, deps.blobGraceMs ?? BLOB_GRACE_MS);
  };

  return {
    maxBytes: deps.maxBytes,

    async upload(file: IncomingFile, uploaderId: number, conversationId: string): Promise<Uploaded> {
      const name = sanitizeFilename(file.name);
      let mime = "";
      const written = await blobs.write(file.chunks, {
        maxBytes: deps.maxBytes,
        headBytes: SNIFF_BYTES,
        onHead: (head) => {
          mime = sniff(head).mime;
          if (!deps.allowedTypes.has(mime)) {
            throw new AppError(415, "unsupported_type", `files of type ${mime} are not accepted here`);
          }
        },
      });
      const id = deps.newId();
      const createdAt = deps.now();
      await deps.commit(() => {
        store.insertUpload({
          id,
          conversationId,
          uploaderId,
          name,
          size: written.size,
          mime,
          sha256: written.sha256,
          createdAt,
        });
        deps.enqueue("attachment_copy", id);
      });
      return { id, name, size: written.size, mime, sha256: written.sha256 };
    },

    /**
     * What a download serves. `canSee` is the membership check for the attachment's conversation; every
     * refusal is a 404 so an id reveals nothing to a stranger.
     */
    async open(id: string, canSee: (conversationId: string) => Promise<boolean>): Promise<OpenedAttachment> {
      const row = store.get(id);
      if (row) {
        if (!(await canSee(row.conversationId))) throw notFound("no such attachment");
        const local = row.sha256 !== null ? blobs.size(row.sha256) : null;
        if (row.sha256 !== null && local === row.size) {
          const file = blobs.file(row.sha256);
          return { ...row, sha256: row.sha256, read: (s: number, e: number) => file.slice(s, e) };
        }
        if (!grid) throw notYet(deps.retryAfterS);
        const meta = await bounded(grid.stat(id)).catch(() => null);
        if (!meta) throw notYet(deps.retryAfterS);
        if (row.sha256 === null) store.learnSha256(id, meta.sha256);
        return { ...row, sha256: meta.sha256, read: (s: number, e: number) => grid.read(id, s, e) };
      }
      // Never heard of here. GridFS knows every attachment that finished copying, and its
      // metadata names the conversation, so membership is checked the same way.
      if (!grid) throw notFound("no such attachment");
      let meta: Awaited<ReturnType<GridStore["stat"]>>;
      try {
        meta = await bounded(grid.stat(id));
      } catch {
        // Cannot tell whether it exists: saying 404 could be wrong for good.
        throw notYet(deps.retryAfterS);
      }
      if (!meta || !(await canSee(meta.conversationId))) throw notFound("no such attachment");
      return { ...meta, read: (s: number, e: number) => grid.read(id, s, e) };
    },

    /** The outbox handler for `attachment_copy`: idempotent by id, streamed from the local file. */
    async copyToGrid(id: string): Promise<void> {
      if (!grid) return;
      const row = store.get(id);
      // Removed since (sweep or message deletion): its removal entry follows this one.
      if (!row || row.sha256 === null) return;
      if (blobs.size(row.sha256) === null) {
        // Bytes missing although never flushed: nothing can bring them back; say so loudly.
        deps.logger.error("attachment bytes missing before the GridFS copy", { id, sha256: row.sha256 });
        return;
      }
      await grid.put({ ...row, sha256: row.sha256 }, blobs.pathOf(row.sha256));
      store.markFlushed(id);
    },

    /** The outbox handler for `attachment_delete`. */
    async removeFromGrid(id: string): Promise<void> {
      await grid?.remove(id);
    },

    /** Removes uploads never sent in a message, older than the TTL. Returns how many. */
    async sweep(): Promise<number> {
      const rows = store.unsentBefore(deps.now() - deps.unsentTtlMs, 500);
      if (rows.length > 0) await dropRows(rows, true);
      return rows.length;
    },

    /**
     * The hook for message deletion: removes the message's attachments here and queues their
     * removal from GridFS. Other instances drop their metadata when the deletion reaches them
     * (they hold no bytes of attachments uploaded elsewhere).
     */
    async deleteForMessage(conversationId: string, messageId: string): Promise<void> {
      const rows = store.ofMessage(conversationId, messageId);
      if (rows.length > 0) await dropRows(rows, false);
    },
  };
}
