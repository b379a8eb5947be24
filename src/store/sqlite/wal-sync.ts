import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";

/**
 * fdatasync of the WAL on the thread pool: what makes commits made with synchronous=NORMAL as
 * durable as synchronous=FULL's, without the event loop waiting for the disk. Everything
 * committed before the call is on disk when it resolves (the WAL is appended in commit order,
 * and an fdatasync covers the whole file). The WAL keeps its inode while the store is open:
 * checkpoints rewind or truncate it, never replace it.
 */
export function createWalSync(dbPath: string) {
  let fd: number | undefined;
  return {
    sync(): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        try {
          fd ??= openSync(`${dbPath}-wal`, "r");
        } catch (err) {
          return reject(err);
        }
        fdatasync(fd, (err) => (err ? reject(err) : resolve()));
      });
    },
    /** The same, blocking the caller (small batches on a quiet loop). */
    syncNow(): void {
      fd ??= openSync(`${dbPath}-wal`, "r");
      fdatasyncSync(fd);
    },
    close(): void {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

export type WalSync = ReturnType<typeof createWalSync>;
