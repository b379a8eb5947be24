import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, statSync } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { AppError } from "../errors.ts";

/**
 * Attachment bytes on the local volume, named by their SHA-256: the same screenshot sent twice
 * is kept once, and a name is its own integrity check. A file is written to tmp/, fsync'd,
 * renamed into place and its directory fsync'd before write() resolves, so the 201 that
 * follows is a promise a power cut cannot break.
 */

export interface Written {
  sha256: string;
  size: number;
  /** The first `headBytes` bytes (fewer for a short file). */
  head: Uint8Array;
}

export interface WriteOptions {
  maxBytes: number;
  /** How much of the start onHead sees (the type sniffer's window). */
  headBytes: number;
  /** Called once with the first `headBytes` bytes; throwing stops the upload before the rest is read. */
  onHead?: (head: Uint8Array) => void;
}

export type BlobStore = ReturnType<typeof openBlobStore>;

const SHA256_RE = /^[0-9a-f]{64}$/;

export const tooLarge = (maxBytes: number) =>
  new AppError(413, "too_large", `the file is larger than ${Math.floor(maxBytes / (1024 * 1024))} MB`);

export function openBlobStore(dir: string) {
  const tmp = join(dir, "tmp");
  mkdirSync(tmp, { recursive: true });
  // Leftovers of uploads cut off by a crash: never renamed, so nothing refers to them.
  for (const name of new Bun.Glob("*").scanSync(tmp)) rmSync(join(tmp, name), { force: true });

  const pathOf = (sha256: string) => {
    if (!SHA256_RE.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(dir, sha256.slice(0, 2), sha256);
  };

  const fsyncDir = async (path: string) => {
    const fd = await open(path, "r");
    try {
      await fd.sync();
    } finally {
      await fd.close();
    }
  };

  return {
    dir,
    pathOf,

    async write(source: AsyncIterable<Uint8Array>, opts: WriteOptions): Promise<Written> {
      const tmpPath = join(tmp, randomBytes(12).toString("hex"));
      const file = await open(tmpPath, "wx", 0o600);
      const hasher = new Bun.CryptoHasher("sha256");
      let size = 0;
      let head = new Uint8Array(0);
      let headSeen = false;
      const seeHead = () => {
        headSeen = true;
        opts.onHead?.(head);
      };
      let renamed = false;
      try {
        for await (const chunk of source) {
          if (chunk.byteLength === 0) continue;
          size += chunk.byteLength;
          if (size > opts.maxBytes) throw tooLarge(opts.maxBytes);
          if (!headSeen) {
            const take = chunk.subarray(0, opts.headBytes - head.byteLength);
            const grown = new Uint8Array(head.byteLength + take.byteLength);
            grown.set(head);
            grown.set(take, head.byteLength);
            head = grown;
            if (head.byteLength >= opts.headBytes) seeHead();
          }
          hasher.update(chunk);
          // write() may take part of a buffer; loop until all of it is down.
          let off = 0;
          while (off < chunk.byteLength) {
            const { bytesWritten } = await file.write(chunk, off, chunk.byteLength - off);
            off += bytesWritten;
          }
        }
        if (!headSeen) seeHead();
        await file.sync();
        await file.close();
        const sha256 = hasher.digest("hex");
        const final = pathOf(sha256);
        const shard = join(dir, sha256.slice(0, 2));
        let newShard = false;
        try {
          statSync(shard);
        } catch {
          await mkdir(shard, { recursive: true });
          newShard = true;
        }
        await rename(tmpPath, final);
        renamed = true;
        await fsyncDir(shard);
        if (newShard) await fsyncDir(dir);
        return { sha256, size, head };
      } finally {
        if (!renamed) {
          await file.close().catch(() => {});
          await rm(tmpPath, { force: true });
        }
      }
    },

    /** The byte count of a stored blob, or null when it is not here (never written, or evicted). */
    size(sha256: string): number | null {
      try {
        return statSync(pathOf(sha256)).size;
      } catch {
        return null;
      }
    },

    /** A lazy handle: nothing is read until the response streams it. */
    file(sha256: string): Bun.BunFile {
      return Bun.file(pathOf(sha256));
    },

    /** Deletes the blob unless it was written less than `youngerThanMs` ago. */
    async remove(sha256: string, youngerThanMs = 0): Promise<void> {
      const path = pathOf(sha256);
      try {
        if (Date.now() - statSync(path).mtimeMs < youngerThanMs) return;
      } catch {
        return;
      }
      await rm(path, { force: true });
    },
  };
}
