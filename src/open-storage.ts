import { dirname, join } from "node:path";
import type { NotifyClaims } from "./bus/notify-claims.ts";
import type { RedisLink } from "./bus/redis-link.ts";
import type { Config } from "./config.ts";
import { type Attachments, createAttachments } from "./domain/attachments.ts";
import type { Copies } from "./domain/copies.ts";
import type { LastSeenStore } from "./domain/presence.ts";
import { createPublishFence, NO_FENCE } from "./domain/publish-fence.ts";
import { createObjectIdGenerator } from "./ids.ts";
import { ATTACHMENT_KINDS, createAttachmentCopy } from "./jobs/attachment-copy.ts";
import { createMongoFlush, MONGO_KINDS } from "./jobs/mongo-flush.ts";
import { NOTIFY_KINDS, notificationsOn, notifierFromConfig } from "./jobs/notifier.ts";
import { createOutboxWorker, register } from "./jobs/outbox-worker.ts";
import { retentionFromConfig } from "./jobs/retention.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { openBlobStore } from "./store/blobs.ts";
import { type DiskGuard, diskGuardFromConfig } from "./store/disk-guard.ts";
import type { GridStore } from "./store/gridfs.ts";
import { createGroupCommitter, type GroupCommitter } from "./store/group-commit.ts";
import type { MongoStore } from "./store/mongo.ts";
import { createReadThrough } from "./store/read-through.ts";
import { createCheckpointer } from "./store/sqlite/checkpointer.ts";
import { type ChatStore, openStore } from "./store/sqlite/index.ts";
import { isStorageFailure } from "./store/storage-errors.ts";

/**
 * Opens what the service keeps: the SQLite store, MongoDB and GridFS behind the outbox, the
 * attachment bytes, and what writes through them or keeps them bounded (group committer, outbox
 * worker, disk guard, retention, the sweep of unsent uploads). Called once by app.ts, before the
 * bus and the chat that use them.
 */

export interface StorageDeps {
  logger: Logger;
  metrics: Metrics;
  now: () => number;
  onRemap: (oldId: string) => void;
  onConfirmed: Copies["announce"];
  claims: () => NotifyClaims;
  busRedis: () => RedisLink | undefined;
  /** Wraps the WAL sync the group commit waits for (tests slow it down). */
  wrapSync?: (sync: () => Promise<void>) => () => Promise<void>;
}

export type Storage = Awaited<ReturnType<typeof openStorage>>;

/** The driver is loaded only when used: it costs a start without MongoDB tens of milliseconds. */
async function connectMongo(uri: string, config: Config): Promise<MongoStore> {
  return (await import("./store/mongo.ts")).openMongo({
    uri,
    db: config.MONGO_DB,
    connectTimeoutMs: config.MONGO_CONNECT_TIMEOUT_MS,
    socketTimeoutMs: config.MONGO_SOCKET_TIMEOUT_MS,
  });
}

/** The outbox's handlers whose sinks are configured, and the worker that runs them (none: no worker). */
function openOutbox(
  config: Config,
  deps: StorageDeps,
  parts: {
    store: ChatStore;
    mongo?: MongoStore;
    grid?: GridStore;
    attachments: () => Attachments;
    durable: () => Promise<void>;
  },
) {
  const { store, mongo, grid } = parts;
  const flush = mongo
    ? createMongoFlush({
        store,
        mongo,
        logger: deps.logger.child({ component: "flusher" }),
        metrics: deps.metrics,
        now: deps.now,
        onRemap: deps.onRemap,
        onConfirmed: deps.onConfirmed,
      })
    : undefined;
  const gridSync = grid
    ? createAttachmentCopy(
        {
          prepare: () => grid.ensureIndexes(),
          copy: (id) => parts.attachments().copyToGrid(id),
          remove: (id) => parts.attachments().removeFromGrid(id),
        },
        deps.metrics,
      )
    : undefined;
  const notifier = notifierFromConfig(config, {
    cycles: store,
    claims: deps.claims,
    busRedis: deps.busRedis,
    logger: deps.logger.child({ component: "notifier" }),
    metrics: deps.metrics,
    now: deps.now,
  });
  const handlers = [
    ...(flush ? [register(flush.handler)] : []),
    ...(notifier ? [register(notifier.handler)] : []),
    ...(gridSync ? [register(gridSync)] : []),
  ];
  const worker =
    handlers.length > 0
      ? createOutboxWorker(
          {
            outbox: store,
            logger: deps.logger.child({ component: "flusher" }),
            batchSize: config.MONGO_FLUSH_BATCH,
            pollMs: config.MONGO_FLUSH_POLL_MS,
            retryMaxMs: config.MONGO_RETRY_MAX_MS,
            now: deps.now,
            durable: parts.durable,
          },
          handlers,
        )
      : undefined;
  return { flush, notifier, worker };
}

function openAttachments(
  config: Config,
  deps: StorageDeps,
  parts: { store: ChatStore; grid?: GridStore; committer: GroupCommitter },
) {
  const { store, committer } = parts;
  return createAttachments({
    store: store.attachments,
    blobs: openBlobStore(config.ATTACHMENT_DIR ?? join(dirname(config.SQLITE_PATH), "attachments")),
    grid: parts.grid,
    newId: createObjectIdGenerator(deps.now),
    now: deps.now,
    maxBytes: config.ATTACHMENT_MAX_MB * 1024 * 1024,
    allowedTypes: new Set(config.ATTACHMENT_TYPES),
    commit: (fn) => committer.submit(fn),
    enqueue: (kind, id) => store.enqueue(kind, { id }, deps.now()),
    gridTimeoutMs: config.MONGO_READ_TIMEOUT_MS,
    unsentTtlMs: config.ATTACHMENT_UNSENT_TTL_S * 1000,
    retryAfterS: config.ATTACHMENT_RETRY_AFTER_S,
    logger: deps.logger.child({ component: "attachments" }),
  });
}

/** How long last-seen times gather before one commit writes them all. */
export const LAST_SEEN_WRITE_DELAY_MS = 1000;

/**
 * Last-seen times are written in one commit a second at most, each user's newest once. A
 * commit per connect (even grouped) made a reconnect storm pay for a sync each millisecond, and
 * its garbage cost every idle connection ~0.45 KB of memory (docs/performance-log.md). The time is
 * advisory: a crash loses at most the last second of it, and shutdown writes what is waiting
 * (`flush`, before the group commit's drain).
 */
export function lastSeenVia(
  store: Pick<ChatStore, "touchPresence" | "lastSeen">,
  committer: Pick<GroupCommitter, "submit">,
  delayMs = LAST_SEEN_WRITE_DELAY_MS,
): LastSeenStore & { flush(): Promise<void> } {
  // Until its commit is durable a time is read from here, so a read right after a close (REST
  // /presence) agrees with the presence frame that announced it.
  const pending = new Map<number, number>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let writing: Promise<void> = Promise.resolve();

  const write = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.size === 0) return writing;
    const batch = [...pending];
    writing = committer
      .submit(() => {
        for (const [userId, at] of batch) store.touchPresence(userId, at);
      })
      .catch(() => {
        // Advisory only; the store may be closing at shutdown, or the disk full.
      })
      .finally(() => {
        // A newer touch since keeps its entry: the next write stores it.
        for (const [userId, at] of batch) if (pending.get(userId) === at) pending.delete(userId);
      });
    return writing;
  };

  return {
    touchPresence: (userId, at) => {
      pending.set(userId, at);
      if (timer !== undefined) return;
      timer = setTimeout(write, delayMs);
      // Shutdown flushes; the timer alone must not keep a stopping process alive.
      timer.unref?.();
    },
    lastSeen: (userId) => pending.get(userId) ?? store.lastSeen(userId),
    flush: write,
  };
}

/**
 * The group committer: every write goes through it. With FULL, commits do not wait for the
 * disk; the committer waits for an fdatasync of the WAL off the event loop before anyone hears
 * of them, and a thread of its own keeps the WAL short (checkpointer.ts).
 */
function openCommitter(
  config: Config,
  deps: StorageDeps,
  parts: { store: ChatStore; disk: DiskGuard; notify: () => void },
) {
  const { store, disk } = parts;
  const checkpointer = store.syncWal
    ? createCheckpointer({
        path: config.SQLITE_PATH,
        logger: deps.logger.child({ component: "checkpoint" }),
        checkpointHere: store.checkpointPassive,
      })
    : undefined;
  const sync = store.syncWal && deps.wrapSync ? deps.wrapSync(store.syncWal) : store.syncWal;
  const committer = createGroupCommitter({
    transaction: store.transaction,
    sync,
    // Only FULL syncs; without it commits need no spacing.
    minSyncGapMs: config.SQLITE_SYNCHRONOUS === "FULL" ? config.SQLITE_SYNC_INTERVAL_MS : 0,
    // A test's slowed sync must be the only path, so no blocking shortcut beside it.
    ...(deps.wrapSync ? {} : { syncNow: store.syncWalNow, inlineUpTo: 4 }),
    gate: checkpointer?.gate,
    onBatch: (n) => {
      deps.metrics.commitBatch.observe(n);
      checkpointer?.committed();
      disk.commitSucceeded();
      parts.notify();
    },
    onCommitted: (seconds) => deps.metrics.commitSeconds.observe(seconds),
    isStorageFailure,
    onCommitError: (err, jobs) => disk.commitFailed(err, jobs),
  });
  return { committer, checkpointer };
}

/** SQLite, and with MONGO_URI the MongoDB behind the outbox: nothing on the request path waits for it. */
export async function openStorage(config: Config, deps: StorageDeps) {
  const store = openStore({
    path: config.SQLITE_PATH,
    synchronous: config.SQLITE_SYNCHRONOUS,
    syncOffLoop: config.SQLITE_SYNC_THREAD,
    // Each handler's kinds, when its sink is configured: nothing is queued that nobody drains.
    outboxKinds: [
      ...(config.MONGO_URI ? [...MONGO_KINDS, ...ATTACHMENT_KINDS] : []),
      ...(notificationsOn(config) ? NOTIFY_KINDS : []),
    ],
  });
  const mongo = config.MONGO_URI ? await connectMongo(config.MONGO_URI, config) : undefined;
  // Like the driver's own module, GridFS's is loaded only with MongoDB: importing it loads the
  // driver, whose BSON serializer alone holds a 17 MiB buffer.
  const grid = mongo
    ? (await import("./store/gridfs.ts")).createGridStore(() => mongo.database())
    : undefined;
  // Made below, once the committer it writes through exists; the worker only calls it later.
  let attachments: Attachments | undefined;
  const { flush, notifier, worker } = openOutbox(config, deps, {
    store,
    mongo,
    grid,
    attachments: () => attachments!,
    durable: () => committer.durable(),
  });
  const history = mongo
    ? createReadThrough({ store, mongo, logger: deps.logger, timeoutMs: config.MONGO_READ_TIMEOUT_MS })
    : undefined;
  const disk = diskGuardFromConfig(config, { ...deps, checkpoint: () => store.retention.checkpoint() });

  const { committer, checkpointer } = openCommitter(config, deps, {
    store,
    disk,
    notify: () => worker?.notify(),
  });

  attachments = openAttachments(config, deps, { store, grid, committer });
  return {
    store,
    flush,
    notifier,
    worker,
    history,
    committer,
    checkpointer,
    /** What is committed but not yet published (the sync of its WAL is still out). */
    fence: store.syncWal ? createPublishFence() : NO_FENCE,
    attachments,
    disk,
    retention: retentionFromConfig(config, store.retention, deps),
    lastSeen: lastSeenVia(store, committer),
  };
}

/** Uploads no message took are removed after ATTACHMENT_UNSENT_TTL_S; checked a few times per TTL. */
export function sweepUnsent(attachments: Attachments, config: Config, logger: Logger) {
  const everyMs = Math.min(3_600_000, Math.max(500, (config.ATTACHMENT_UNSENT_TTL_S * 1000) / 4));
  const timer = setInterval(() => {
    attachments.sweep().catch((err) => logger.warn("attachment sweep failed", { error: err }));
  }, everyMs);
  timer.unref();
  return timer;
}
