import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";

/**
 * Keeps the local SQLite bounded when MongoDB is the system of record: a periodic sweep removes
 * messages MongoDB confirmed that are older than the retention, then, while the file is over
 * LOCAL_MAX_MB, the oldest confirmed ones, and gives the pages back to the disk. Not an outbox
 * job: it follows no single change, and repeating it is harmless. Without MongoDB it does not run.
 */

/** What the sweep needs of the store (store/sqlite/retention.ts). */
export interface RetentionPort {
  confirmedBelow(): string | null;
  oldestMessageId(): string | null;
  evictBelow(below: string, at: number, yieldNow: () => Promise<void>): Promise<number>;
  pruneEvictedClientIds(before: number, limit?: number): number;
  databaseBytes(): number;
  compact(): void;
}

export interface RetentionOptions {
  store: RetentionPort;
  logger: Logger;
  metrics: Metrics;
  retentionDays: number;
  maxBytes?: number;
  intervalMs: number;
  now: () => number;
}

/**
 * How long the client_id of an evicted message is remembered. A client resends an unacked
 * message within seconds or at its next reconnect; a day covers a laptop closed overnight.
 */
export const EVICTED_CLIENT_ID_WINDOW_MS = 24 * 3600 * 1000;

/** Steps from the oldest message to the confirmed watermark when evicting for size. */
const SIZE_STEPS = 32;
const ALL_CONFIRMED = "ffffffffffffffffffffffff";

/** The smallest ObjectId made at `ms` (ids start with their second, big-endian). */
export const idAt = (ms: number): string =>
  Math.max(0, Math.min(0xffffffff, Math.floor(ms / 1000)))
    .toString(16)
    .padStart(8, "0") + "0".repeat(16);

const secondsOf = (id: string) => Number.parseInt(id.slice(0, 8), 16);
const minId = (a: string, b: string) => (a < b ? a : b);
const yieldNow = () => new Promise<void>((r) => setImmediate(r));

export function createRetention(opts: RetentionOptions) {
  const { store, logger } = opts;
  const registry = opts.metrics.registry;
  const evicted = registry.counter("chat_local_evicted_total", "Messages removed from SQLite by retention");
  registry.gauge("chat_local_db_bytes", "Size of the local SQLite database", () => store.databaseBytes());
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let overLimitReported = false;

  /** Evicts the oldest confirmed messages step by step until the file is under the limit. */
  async function shrinkTo(maxBytes: number, watermark: string, at: number): Promise<number> {
    const oldest = store.oldestMessageId();
    if (oldest === null) return 0;
    const from = secondsOf(oldest);
    const to = Math.max(from, secondsOf(watermark === ALL_CONFIRMED ? idAt(at) : watermark));
    let removed = 0;
    for (let step = 1; step <= SIZE_STEPS && store.databaseBytes() > maxBytes; step++) {
      const cut = idAt((from + ((to - from + 1) * step) / SIZE_STEPS) * 1000);
      removed += await store.evictBelow(minId(cut, watermark), at, yieldNow);
      store.compact();
    }
    // What is left is the newest of each conversation and what MongoDB has not confirmed; the
    // remembered client_ids of evicted messages give way before those.
    if (store.databaseBytes() > maxBytes && store.pruneEvictedClientIds(Number.POSITIVE_INFINITY) > 0) {
      store.compact();
    }
    return removed;
  }

  async function sweep(): Promise<number> {
    const at = opts.now();
    const watermark = store.confirmedBelow() ?? ALL_CONFIRMED;
    const byAge = minId(idAt(at - opts.retentionDays * 86_400_000), watermark);
    let removed = await store.evictBelow(byAge, at, yieldNow);
    const pruned = store.pruneEvictedClientIds(at - EVICTED_CLIENT_ID_WINDOW_MS);
    if (removed > 0 || pruned > 0) store.compact();
    // Under a size limit the WAL counts too: a burst leaves it large until an auto-checkpoint
    // that may be far off, so every sweep truncates it (cheap when it is small).
    if (opts.maxBytes !== undefined && removed === 0 && pruned === 0) store.compact();
    if (opts.maxBytes !== undefined && store.databaseBytes() > opts.maxBytes) {
      removed += await shrinkTo(opts.maxBytes, watermark, at);
      const over = store.databaseBytes() > opts.maxBytes;
      // Once per episode: the condition lasts until MongoDB confirms the backlog.
      if (over && !overLimitReported) {
        logger.warn(
          "local store stays over LOCAL_MAX_MB: the rest is unflushed or each conversation's newest",
          {
            bytes: store.databaseBytes(),
            max_bytes: opts.maxBytes,
          },
        );
      }
      overLimitReported = over;
    }
    if (removed > 0) {
      evicted.inc(undefined, removed);
      logger.info("local retention", { evicted: removed, bytes: store.databaseBytes() });
    }
    return removed;
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep()
        .then(
          () => {},
          (err) => logger.warn("local retention sweep failed; retried next interval", { error: err }),
        )
        .finally(schedule);
    }, opts.intervalMs);
  };

  return {
    start: schedule,
    /** One sweep now (tests, and the benchmark's figure). Returns messages removed. */
    sweep,
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/** With MongoDB as the record, the local copy of what it confirmed is bounded; without, nothing runs. */
export function retentionFromConfig(
  config: Config,
  store: RetentionPort,
  deps: { logger: Logger; metrics: Metrics; now: () => number },
) {
  if (!config.MONGO_URI) return undefined;
  return createRetention({
    store,
    logger: deps.logger.child({ component: "retention" }),
    metrics: deps.metrics,
    retentionDays: config.LOCAL_RETENTION_DAYS,
    maxBytes: config.LOCAL_MAX_MB === undefined ? undefined : config.LOCAL_MAX_MB * 1024 * 1024,
    intervalMs: config.LOCAL_SWEEP_INTERVAL_S * 1000,
    now: deps.now,
  });
}
