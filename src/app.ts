import type { Server } from "bun";
import { createAuthenticate } from "./auth/authenticate.ts";
import { createFailedAuthGuard } from "./auth/failed-auth.ts";
import { compileOrigins } from "./auth/origin.ts";
import { createUpgradeBudget } from "./auth/upgrade-budget.ts";
import { createFanout } from "./bus/fanout.ts";
import { closedClaims, createRedisClaims, localClaims, type NotifyClaims } from "./bus/notify-claims.ts";
import type { RedisLink } from "./bus/redis-link.ts";
import type { Config } from "./config.ts";
import type { Attachments } from "./domain/attachments.ts";
import type { Deliver } from "./domain/bus.ts";
import { type Chat, createChat } from "./domain/chat.ts";
import { type Copies, createCopyKeeper } from "./domain/copies.ts";
import { createDeletionHook, createEdits, type DeletionHook, type Edits } from "./domain/edits.ts";
import type { Presence } from "./domain/presence.ts";
import { createPresenceAnnouncer, type PresenceAnnouncer } from "./domain/presence-announce.ts";
import { KeyedBuckets, SharedRate } from "./domain/rate.ts";
import { createRelay } from "./domain/relay.ts";
import { createHttpApp } from "./http/app.ts";
import { createIdentity } from "./identity/index.ts";
import { createDjangoProbe } from "./identity/probe.ts";
import type { Identity } from "./identity/types.ts";
import { createObjectIdGenerator } from "./ids.ts";
import { ATTACHMENT_KINDS } from "./jobs/attachment-copy.ts";
import { MONGO_KINDS } from "./jobs/mongo-flush.ts";
import type { Logger } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { openStorage, type Storage, sweepUnsent } from "./open-storage.ts";
import { createReadiness, registerGauges } from "./readiness.ts";
import { createShutdown, serve, type Teardown } from "./server.ts";
import { type ChatSocket, createSessionHandlers, type SessionData } from "./ws/session.ts";
import { createUpgradeHandler } from "./ws/upgrade.ts";

/**
 * Builds the whole service from a configuration and starts listening: the composition root
 * that main.ts calls with the environment and tests call with a temp SQLite file and port 0.
 * Every part gets its dependencies here (storage in open-storage.ts); nothing else opens a
 * connection.
 */

export interface ServiceOverrides {
  identity?: Identity;
  now?: () => number;
  /** Wraps the WAL sync the group commit waits for (tests slow it down to prove the ordering). */
  wrapSync?: (sync: () => Promise<void>) => () => Promise<void>;
}

export interface Service {
  server: Server<SessionData>;
  /**
   * Told after every message deletion is durable here (made here or relayed): where code that
   * keeps things beside a message (attachments) subscribes.
   */
  deletions: DeletionHook;
  /** The REST routes (tests enumerate `app.routes` so none escapes the authorisation matrix). */
  app: ReturnType<typeof createHttpApp>;
  url: string;
  port: number;
  /** Drains and stops: unready, acks what is queued, closes sockets with 1001, closes the store. */
  shutdown(reason?: string): Promise<void>;
}

/** Sockets hold the old id (and its topic): make them reconnect onto the adopted one. */
const reconnectRemapped = (sockets: Set<ChatSocket>) => (oldId: string) => {
  for (const ws of sockets) {
    if (ws.data.conversation.id === oldId) ws.close(1012, "conversation id changed; reconnect");
  }
};

type Fanout = Awaited<ReturnType<typeof createFanout>>;
/** What nearly every part is given. */
type Basics = { metrics: Metrics; logger: Logger; now: () => number };

/** The bus, and what a frame relayed from another instance does here (kept, copied, applied). */
async function openFanout(
  config: Config,
  deps: Basics & { storage: Storage; deletions: DeletionHook; deliver: Deliver },
) {
  const { storage, deletions, metrics, now } = deps;
  const { store, committer } = storage;
  const notify = storage.notifier?.hooks;
  const keeper = createCopyKeeper({ store, committer, delayMs: config.COPY_FLUSH_DELAY_MS, now, metrics });
  const { accept, keepReplica } = createRelay({
    store,
    committer,
    fence: storage.fence,
    copies: keeper,
    notify,
    deletions,
  });
  return createFanout(config, {
    deliver: deps.deliver,
    accept,
    keepReplica,
    keeper,
    lastSeen: storage.lastSeen,
    registry: metrics.registry,
    logger: deps.logger,
    now,
  });
}

/** A deleted message's attachments go too: here, and from GridFS when they were uploaded here. */
function deletionHookOf(attachments: Attachments, logger: Logger): DeletionHook {
  const deletions = createDeletionHook((error) => logger.error("a deletion listener failed", { error }));
  deletions.subscribe(({ conversationId, messageId }) => {
    attachments
      .deleteForMessage(conversationId, messageId)
      .catch((error) => logger.warn("removing a deleted message's attachments failed", { error }));
  });
  return deletions;
}

/** The chat's rules over the store and the bus: sending and reading, edits and deletes, presence. */
function createChatRules(
  config: Config,
  deps: Basics & { storage: Storage; fanout: Fanout; deletions: DeletionHook },
) {
  const { storage, fanout, metrics, now } = deps;
  const { store, committer } = storage;
  const chat = createChat({
    store,
    committer,
    fence: storage.fence,
    bus: fanout.bus,
    newId: createObjectIdGenerator(now, store.newestMessageId() ?? undefined),
    now,
    metrics,
    maxMessageChars: config.MAX_MESSAGE_CHARS,
    admit: storage.disk.admit,
    history: storage.history,
    ...(config.ACK_COPIES >= 2 ? { secondCopy: fanout.copies } : {}),
    notify: storage.notifier?.hooks,
  });
  const edits = createEdits({
    store,
    committer,
    fence: storage.fence,
    bus: fanout.bus,
    now,
    metrics,
    maxMessageChars: config.MAX_MESSAGE_CHARS,
    editWindowMs: config.EDIT_WINDOW_S * 1000,
    deletions: deps.deletions,
  });
  const announcer = createPresenceAnnouncer({
    presence: fanout.presence,
    announce: chat.announcePresence,
    offlineDelayMs: config.PRESENCE_OFFLINE_DELAY_MS,
    onError: (err) => deps.logger.warn("presence announcement failed", { error: err }),
  });
  return { chat, edits, announcer };
}

interface Core extends Basics {
  config: Config;
  storage: Storage;
  identity: Identity;
  chat: Chat;
  edits: Edits;
  presence: Presence;
  announcer: PresenceAnnouncer;
  bus: Fanout["bus"];
  copies: Fanout["copies"];
  redisShape?: Fanout["redisShape"];
  sockets: Set<ChatSocket>;
  deliver: Deliver;
  isDraining: () => boolean;
  clientIp: (req: Request) => string;
}

/** The two transports over the same chat: REST (with the demo's routes when on) and WebSocket. */
async function createTransports(
  core: Core,
  readiness: ReturnType<typeof createReadiness>,
  demoAllowed: boolean,
) {
  const { config, logger, metrics, identity, chat, presence, bus } = core;
  const { store, history } = core.storage;
  const originAllowed = compileOrigins(config.ALLOWED_ORIGINS);
  const authFailures = createFailedAuthGuard(config.AUTH_FAILURES_PER_MIN);
  const authenticate = createAuthenticate({ identity, authFailures, clientIp: core.clientIp });
  // Imported only when on, so the demo's bundling costs nothing otherwise.
  const extend = config.DEMO_PAGE
    ? await (await import("./demo/routes.ts")).createDemoRoutes({
        config,
        directoryIdentity: demoAllowed && identity.kind === "directory",
        logger,
      })
    : undefined;
  const app = createHttpApp({
    store,
    fence: core.storage.fence,
    attachments: core.storage.attachments,
    presence: (u) => presence.status(u),
    restBuckets: new KeyedBuckets(config.RATE_REST_PER_MIN / 60, config.RATE_REST_PER_MIN),
    originAllowed,
    metrics,
    logger,
    readiness,
    metricsToken: config.METRICS_TOKEN,
    authenticate,
    extend,
    history,
  });
  const frameRate = new SharedRate(config.RATE_MESSAGES_PER_S, config.RATE_MESSAGES_BURST);
  const upgrade = createUpgradeHandler({
    identity,
    chat,
    presence: core.announcer,
    watch: (id) => bus.watch(id),
    unwatch: (id) => bus.unwatch(id),
    originAllowed,
    metrics,
    logger,
    frameRate,
    maxConnectionsPerUser: config.MAX_CONNECTIONS_PER_USER,
    isDraining: core.isDraining,
    authenticate,
    budget: createUpgradeBudget(config.UPGRADES_PER_MIN_PER_USER, config.UPGRADES_PER_MIN_PER_ADDRESS),
    clientIp: core.clientIp,
  });
  const session = createSessionHandlers({
    chat,
    edits: core.edits,
    store,
    fence: core.storage.fence,
    identity,
    authFailures,
    presence,
    announcer: core.announcer,
    unwatch: (id) => bus.unwatch(id),
    userBuckets: new KeyedBuckets(config.RATE_USER_MESSAGES_PER_S, config.RATE_USER_MESSAGES_BURST),
    frameRate,
    metrics,
    logger,
    now: core.now,
    publishLocal: core.deliver,
    sockets: core.sockets,
    clockToleranceS: config.JWT_CLOCK_TOLERANCE_S,
  });
  return { app, upgrade, session };
}

/** What stops after the sockets, in the order createShutdown calls it. */
function teardownOf(
  storage: Storage,
  fanout: { presence: Presence; bus: Core["bus"]; copies: Core["copies"] },
  announcer: PresenceAnnouncer,
  onClose?: () => void,
): Teardown {
  return {
    drainCommits: async () => {
      // The closes just made wrote last-seen times that wait for their one commit a second.
      await storage.lastSeen.flush();
      await storage.committer.drain();
    },
    closeFanout: async () => {
      // The sockets are closed by now: their held closes leave presence while the bus is up.
      await announcer.flush();
      fanout.copies.close?.();
      onClose?.();
      await fanout.presence.close();
      await fanout.bus.close();
    },
    stopWorker: async (budgetMs) => {
      storage.disk.stop();
      await storage.retention?.stop();
      await storage.worker?.stop(budgetMs);
    },
    closeStore: async () => {
      // The checkpoint thread's connection first: the writer's close, last, removes the WAL.
      await storage.checkpointer?.close();
      storage.store.close();
    },
  };
}

function probesOf(core: Core) {
  const { storage, bus, presence } = core;
  return {
    // The outbox figures are MongoDB's: notifications report their own backlog.
    store: {
      healthy: () => storage.store.healthy(),
      outboxStats: () => storage.store.outboxStats([...MONGO_KINDS, ...ATTACHMENT_KINDS]),
      clientIdStats: () => storage.store.clientIdStats(),
      messageLogStats: () => storage.store.messageLogStats(),
    },
    identity: core.identity,
    bus: {
      healthy: () => bus.healthy(),
      kind: core.config.REDIS_URL ? ("redis" as const) : ("local" as const),
      redis: core.redisShape,
    },
    mongo: storage.flush?.status,
    disk: storage.disk.status,
    copies: () => core.copies.status(),
    notify: storage.notifier?.status,
    sockets: () => core.sockets.size,
    localUsers: () => presence.localUsers,
    isDraining: core.isDraining,
    now: core.now,
  };
}

export async function startService(
  config: Config,
  logger: Logger,
  overrides: ServiceOverrides = {},
): Promise<Service> {
  const now = overrides.now ?? Date.now;
  const metrics = createMetrics();
  const sockets = new Set<ChatSocket>();
  let draining = false;
  let server: Server<SessionData> | undefined;
  // The server is made last (its handlers need the chat); frames reach its topics through this.
  const deliver: Deliver = (topic, frame) => {
    server?.publish(topic, frame);
  };
  // The bus is made after storage; MongoDB's confirmations reach peers through it from then on.
  let copiesOut: Copies | undefined;
  // Notification claims and stream go through the bus's Redis, which exists only after the fan-out.
  let claims: NotifyClaims = localClaims;
  let busRedis: RedisLink | undefined;
  const storage = await openStorage(config, {
    logger,
    metrics,
    now,
    onRemap: reconnectRemapped(sockets),
    onConfirmed: (kind, keys) => copiesOut?.announce(kind, keys),
    claims: () => claims,
    busRedis: () => busRedis,
    wrapSync: overrides.wrapSync,
  });
  const sweeper = sweepUnsent(storage.attachments, config, logger);
  const { identity, notes } = overrides.identity
    ? { identity: overrides.identity, notes: [] }
    : createIdentity(config, logger);
  for (const note of notes) logger.warn(note);
  const deletions = deletionHookOf(storage.attachments, logger);
  const djangoProbe = config.DJANGO_BASE_URL
    ? createDjangoProbe(config.DJANGO_BASE_URL, { timeoutMs: config.DJANGO_TIMEOUT_MS, logger, now })
    : undefined;
  const fanout = await openFanout(config, { storage, deletions, deliver, metrics, logger, now });
  busRedis = fanout.redis;
  copiesOut = fanout.copies;
  if (busRedis) claims = createRedisClaims({ redis: busRedis, prefix: config.REDIS_PREFIX });
  const { chat, edits, announcer } = createChatRules(config, {
    storage,
    fanout,
    deletions,
    metrics,
    logger,
    now,
  });
  const clientIp = (req: Request) => server?.requestIP(req)?.address ?? "unknown";
  const core: Core = {
    config,
    logger,
    metrics,
    now,
    storage,
    identity,
    chat,
    edits,
    ...fanout,
    announcer,
    sockets,
    deliver,
    clientIp,
    isDraining: () => draining,
  };
  const probes = { ...probesOf(core), identityProbe: djangoProbe?.status };
  const readiness = createReadiness(probes);
  registerGauges(metrics, probes);
  const { app, upgrade, session } = await createTransports(core, readiness, !overrides.identity);
  server = serve({ config, logger, upgrade, fetch: app.fetch, session, sockets });
  const shutdown = createShutdown({
    config,
    logger,
    sockets,
    server: () => server,
    setDraining: () => {
      draining = true;
    },
    teardown: teardownOf(storage, fanout, announcer, () => {
      clearInterval(sweeper);
      claims = closedClaims;
    }),
  });
  storage.worker?.start();
  storage.retention?.start();
  void djangoProbe?.start();
  const port = server.port ?? config.PORT;
  logger.info("listening", { port, identity: identity.kind, sqlite: config.SQLITE_PATH });
  return { server, app, deletions, url: `http://127.0.0.1:${port}`, port, shutdown };
}
