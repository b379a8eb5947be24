import { statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Config } from "../config.ts";
import { AppError, unavailable } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { isStorageFailure } from "./storage-errors.ts";

/**
 * Watches the SQLite volume. Below DISK_MIN_FREE_MB new messages are refused with `unavailable`
 * before they reach a commit; a commit that fails for lack of space or an I/O error refuses its
 * whole batch the same way. Either makes /readyz 503 until it passes: the low space when the
 * free space is back, the failed write when a commit succeeds again. Nothing here needs a
 * restart. The log says each condition once per LOG_EVERY_MS, with how often it happened.
 */

export interface DiskGuardOptions {
  /** A directory on the SQLite volume. */
  dir: string;
  minFreeBytes: number;
  logger: Logger;
  metrics: Metrics;
  /** Truncates the WAL, so it stays small while the disk is short. */
  checkpoint: () => void;
  pollMs?: number;
  now?: () => number;
  /** Free bytes on the volume (tests may pass their own). */
  freeBytes?: (dir: string) => number;
}

const LOG_EVERY_MS = 10_000;

type Condition = "low_space" | "write_failed";

const statfsFree = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

export function createDiskGuard(opts: DiskGuardOptions) {
  const { logger } = opts;
  const now = opts.now ?? Date.now;
  const readFree = opts.freeBytes ?? statfsFree;
  const registry = opts.metrics.registry;
  const refusals = registry.counter(
    "chat_disk_refusals_total",
    "Messages refused as unavailable because the SQLite volume is short of space or failing, by reason",
  );
  let free = Number.POSITIVE_INFINITY;
  let low = false;
  let writeError: string | undefined;
  let walToTruncate = false;
  const pending: Record<Condition, { count: number; loggedAt: number }> = {
    low_space: { count: 0, loggedAt: Number.NEGATIVE_INFINITY },
    write_failed: { count: 0, loggedAt: Number.NEGATIVE_INFINITY },
  };
  registry.gauge("chat_disk_free_bytes", "Free bytes on the SQLite volume", () =>
    Number.isFinite(free) ? free : -1,
  );

  /** Counts one occurrence; writes a line only when the last one for it is old enough. */
  const note = (condition: Condition, n: number, fields: Record<string, unknown>) => {
    const p = pending[condition];
    p.count += n;
    refusals.inc({ reason: condition }, n);
    if (now() - p.loggedAt < LOG_EVERY_MS) return;
    logger.error(
      condition === "low_space"
        ? "disk short of space: new messages refused as unavailable"
        : "SQLite commit failed: the batch was refused as unavailable",
      { condition, count: p.count, free_bytes: free, min_free_bytes: opts.minFreeBytes, ...fields },
    );
    p.count = 0;
    p.loggedAt = now();
  };

  const poll = () => {
    try {
      free = readFree(opts.dir);
    } catch (err) {
      logger.warn("cannot read free space of the SQLite volume", { error: err });
      return;
    }
    const wasLow = low;
    low = free < opts.minFreeBytes;
    if (low || writeError || walToTruncate) {
      try {
        opts.checkpoint();
        walToTruncate = false;
      } catch {
        // The checkpoint itself may need space; the next poll tries again.
      }
    }
    if (wasLow && !low) logger.info("disk space back: accepting messages", { free_bytes: free });
  };
  poll();
  // statfs costs microseconds; polling often makes the return of space noticed quickly.
  const timer = setInterval(poll, opts.pollMs ?? 250);
  timer.unref?.();

  return {
    /** Throws `unavailable` while the volume is below the threshold. */
    admit(): void {
      if (!low) return;
      note("low_space", 1, {});
      throw unavailable("the server is short of disk space; keep the message and resend it shortly");
    },

    /** What every job of a failed batch is rejected with: storage failures become `unavailable`. */
    commitFailed(err: unknown, jobs: number): unknown {
      if (!isStorageFailure(err)) return err;
      const code = (err as { code?: unknown }).code;
      writeError = typeof code === "string" ? code : "storage failure";
      note("write_failed", jobs, { error: err });
      return new AppError(503, "unavailable", "the server could not store this right now; resend it shortly");
    },

    commitSucceeded(): void {
      if (writeError === undefined) return;
      logger.info("SQLite commits succeed again", { after: writeError });
      writeError = undefined;
      // The WAL holds what it had when the disk filled (a checkpoint needed room the database
      // file could not get): the next poll gives that space back.
      walToTruncate = true;
    },

    /** For /readyz: ok while there is room and the last commit did not fail for lack of it. */
    status(): Record<string, unknown> & { ok: boolean } {
      return {
        ok: !low && writeError === undefined,
        free_bytes: Number.isFinite(free) ? free : null,
        min_free_bytes: opts.minFreeBytes,
        ...(low ? { problem: "free space on the SQLite volume is below DISK_MIN_FREE_MB" } : {}),
        ...(writeError ? { problem: `the last SQLite commit failed (${writeError})` } : {}),
      };
    },

    /** Reads the free space now (the timer does it every `pollMs`). */
    poll,

    stop(): void {
      clearInterval(timer);
    },
  };
}

export type DiskGuard = ReturnType<typeof createDiskGuard>;

/** The guard of SQLITE_PATH's volume with DISK_MIN_FREE_MB. */
export function diskGuardFromConfig(
  config: Config,
  deps: { logger: Logger; metrics: Metrics; checkpoint: () => void },
): DiskGuard {
  return createDiskGuard({
    dir: dirname(resolve(config.SQLITE_PATH)),
    minFreeBytes: config.DISK_MIN_FREE_MB * 1024 * 1024,
    logger: deps.logger.child({ component: "disk" }),
    metrics: deps.metrics,
    checkpoint: deps.checkpoint,
  });
}
