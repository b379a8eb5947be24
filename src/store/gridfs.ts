import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { type Binary, type Db, type FindCursor, GridFSBucket, ObjectId } from "mongodb";

/**
 * Attachment bytes in MongoDB GridFS, the system of record. The GridFS _id is the attachment id,
 * so a copy is idempotent by id: a finished one is found and skipped, and the chunks a cut-off
 * one left behind are removed before it is sent again.
 *
 * Memory stays bounded both ways: uploads stream from the local file one chunk at a time, and
 * reads fetch READ_BATCH_CHUNKS chunks per round trip rather than the driver's default first
 * batch (which can be 16 MB).
 */

export const BUCKET = "attachments";
const CHUNK_BYTES = 255 * 1024;
const READ_BATCH_CHUNKS = 4;

export interface GridMeta {
  id: string;
  conversationId: string;
  uploaderId: number;
  name: string;
  size: number;
  mime: string;
  sha256: string;
  createdAt: number;
}

interface FilesDoc {
  _id: ObjectId;
  length: number;
  chunkSize: number;
  filename: string;
  metadata?: {
    conversation_id?: string;
    uploader_id?: number;
    mime?: string;
    sha256?: string;
    created_at?: Date;
  };
}

interface ChunkDoc {
  _id: ObjectId;
  files_id: ObjectId;
  n: number;
  data: Binary;
}

export type GridStore = ReturnType<typeof createGridStore>;

export function createGridStore(database: () => Promise<Db>) {
  const collections = async () => {
    const db = await database();
    return {
      db,
      bucket: new GridFSBucket(db, { bucketName: BUCKET, chunkSizeBytes: CHUNK_BYTES }),
      files: db.collection<FilesDoc>(`${BUCKET}.files`),
      chunks: db.collection<ChunkDoc>(`${BUCKET}.chunks`),
    };
  };

  const store = {
    /** Copies a local file into GridFS unless it is there already. */
    async put(meta: GridMeta, path: string): Promise<"stored" | "present"> {
      const { bucket, files, chunks } = await collections();
      const _id = new ObjectId(meta.id);
      const existing = await files.findOne({ _id }, { projection: { length: 1 } });
      if (existing && existing.length === meta.size) return "present";
      if (existing) await files.deleteOne({ _id });
      // Chunks of an upload cut off before its files document was written.
      await chunks.deleteMany({ files_id: _id });
      const upload = bucket.openUploadStreamWithId(_id, meta.name, {
        metadata: {
          conversation_id: meta.conversationId,
          uploader_id: meta.uploaderId,
          mime: meta.mime,
          sha256: meta.sha256,
          created_at: new Date(meta.createdAt),
        },
      });
      await pipeline(createReadStream(path, { highWaterMark: CHUNK_BYTES }), upload);
      return "stored";
    },

    async stat(id: string): Promise<GridMeta | null> {
      const { files } = await collections();
      const doc = await files.findOne({ _id: new ObjectId(id) });
      if (!doc) return null;
      const md = doc.metadata ?? {};
      return {
        id,
        conversationId: String(md.conversation_id ?? ""),
        uploaderId: Number(md.uploader_id ?? 0),
        name: doc.filename,
        size: doc.length,
        mime: String(md.mime ?? "application/octet-stream"),
        sha256: String(md.sha256 ?? ""),
        createdAt: md.created_at instanceof Date ? md.created_at.getTime() : 0,
      };
    },

    /**
     * The bytes [start, end) of a stored file, as the consumer pulls. One query (a server that
     * cannot use the index, like FerretDB on SQLite, scans once, not once per batch) whose cursor
     * fetches READ_BATCH_CHUNKS chunks at a time. The caller has checked the range against stat().
     */
    read(id: string, start: number, end: number): ReadableStream<Uint8Array> {
      const filesId = new ObjectId(id);
      const firstN = Math.floor(start / CHUNK_BYTES);
      const lastN = Math.floor((end - 1) / CHUNK_BYTES);
      let n = firstN;
      let pos = firstN * CHUNK_BYTES;
      let cursor: FindCursor<ChunkDoc> | undefined;
      return new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            if (end <= start || n > lastN) {
              await cursor?.close();
              controller.close();
              return;
            }
            if (!cursor) {
              const { chunks } = await collections();
              cursor = chunks
                .find({ files_id: filesId, n: { $gte: firstN, $lte: lastN } })
                .sort({ n: 1 })
                .batchSize(READ_BATCH_CHUNKS);
            }
            const doc = await cursor.next();
            if (!doc || doc.n !== n) throw new Error(`GridFS file ${id}: chunk ${n} is missing`);
            const bytes = doc.data.buffer;
            const from = Math.max(0, start - pos);
            const to = Math.min(bytes.length, end - pos);
            if (to > from) controller.enqueue(new Uint8Array(bytes.subarray(from, to)));
            pos += bytes.length;
            n++;
          },
          async cancel() {
            await cursor?.close();
          },
        },
        { highWaterMark: 1 },
      );
    },

    /** Removes the file and its chunks; a file that is not there is already removed. */
    async remove(id: string): Promise<void> {
      const { files, chunks } = await collections();
      const _id = new ObjectId(id);
      // The files document first: without it a reader finds nothing, not a file with holes.
      await files.deleteOne({ _id });
      await chunks.deleteMany({ files_id: _id });
    },

    async ensureIndexes(): Promise<void> {
      const { chunks, files } = await collections();
      await chunks.createIndex({ files_id: 1, n: 1 }, { unique: true, name: "files_id_1_n_1" });
      await files.createIndex({ filename: 1, uploadDate: 1 }, { name: "filename_1_uploadDate_1" });
    },
  };
  return store;
}
