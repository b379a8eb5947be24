import type { Server } from "bun";
import { createLocalBus } from "./bus/local.ts";
import { createRedisBus } from "./bus/redis.ts";
import { createRelayAccept } from "./bus/relay.ts";
import type { Bus, Deliver } from "./bus/types.ts";
import type { Config } from "./config.ts";
import { createChat } from "./domain/chat.ts";
import {
  createLocalPresence,
  type LastSeenStore,
  type Presence,
  PresenceTracker,
} from "./domain/presence.ts";
import { KeyedBuckets } from "./domain/rate.ts";
import { createHttpApp, type Readiness } from "./http/app.ts";
import { createFailedAuthGuard } from "./http/failed-auth.ts";
import { compileOrigins } from "./http/origin.ts";
import { createIdentity } from "./identity/index.ts";
import type { Identity } from "./identity/types.ts";
import { createObjectIdGenerator } from "./ids.ts";
import { createFlusher } from "./jobs/flusher.ts";
import type { Logger } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { connectRedis, type RedisShape } from "./redis/connect.ts";
import { createRedisPresence } from "./redis/presence.ts";
import { createGroupCommitter } from "./store/group-commit.ts";
import { createReadThrough } from "./store/read-through.ts";
import { type ChatStore, openStore } from "./store/sqlite.ts";
import { type ChatSocket, createSessionHandlers, type SessionData } from "./ws/session.ts";
import { createUpgradeHandler } from "./ws/upgrade.ts";

/**
 * Builds the whole service from a configuration and starts listening. main.ts calls it with
 * the environment; tests call it with a temp SQLite file and port 0.
 */

export interface ServiceOverrides {
  identity?: Identity;
  now?: () => number;
}

export interface Service {
  server: Server<SessionData>;
  /** The REST routes (tests enumerate `app.routes` so none escapes the authorisation matrix). */
  app: ReturnType<typeof createHttpApp>;
  url: string;
  port: number;
  /** Drains and stops: unready, acks what is queued, closes sockets with 1001, closes the store. */
  shutdown(reason?: string): Promise<void>;
}

export async function startService(
  config: Config,
  logger: Logger,
  overrides: ServiceOverrides = {},
): Promise<Service> {
  const now = overrides.now ?? Date.now;
  const metrics = createMetrics();
  const store = openStore({
    path: config.SQLITE_PATH,
    synchronous: config.SQLITE_SYNCHRONOUS,
    outbox: Boolean(config.MONGO_URI),
  });
  const sockets = new Set<ChatSocket>();
  // MongoDB, when configured, sits behind the outbox: nothing on the request path waits for it.
  // The driver is loaded only when used: it costs a start without MongoDB tens of milliseconds.
  const mongo = config.MONGO_URI
    ? (await import("./store/mongo.ts")).openMongo({
        uri: config.MONGO_URI,
        db: config.MONGO_DB,
        connectTimeoutMs: config.MONGO_CONNECT_TIMEOUT_MS,
        socketTimeoutMs: config.MONGO_SOCKET_TIMEOUT_MS,
      })
    : undefined;
  const flusher = mongo
    ? createFlusher({
        store,
        mongo,
        logger: logger.child({ component: "flusher" }),
        metrics,
        batchSize: config.MONGO_FLUSH_BATCH,
        pollMs: config.MONGO_FLUSH_POLL_MS,
        retryMaxMs: config.MONGO_RETRY_MAX_MS,
        now,
        // Sockets hold the old id (and its topic): make them reconnect onto the adopted one.
        onRemap: (oldId) => {
          for (const ws of sockets) {
            if (ws.data.conversation.id === oldId) ws.close(1012, "conversation id changed; reconnect");
          }
        },
      })
    : undefined;
  const history = mongo
    ? createReadThrough({ store, mongo, logger, timeoutMs: config.MONGO_READ_TIMEOUT_MS })
    : undefined;
  const committer = createGroupCommitter({
    transaction: store.transaction,
    onBatch: (n) => {
      metrics.commitBatch.observe(n);
      flusher?.notify();
    },
  });
  const { identity, notes } = overrides.identity
    ? { identity: overrides.identity, notes: [] }
    : createIdentity(config, logger);
  for (const note of notes) logger.warn(note);

  let draining = false;
  let server: Server<SessionData> | undefined;

  const deliver: Deliver = (topic, frame) => {
    server?.publish(topic, frame);
  };
  const { bus, presence, redisShape } = await createFanout(config, {
    deliver,
    store,
    committer,
    metrics,
    logger,
    now,
  });
  const chat = createChat({
    store,
    committer,
    bus,
    newId: createObjectIdGenerator(now, store.newestMessageId() ?? undefined),
    now,
    metrics,
    maxMessageChars: config.MAX_MESSAGE_CHARS,
    history,
  });
  const originAllowed = compileOrigins(config.ALLOWED_ORIGINS);
  const authFailures = createFailedAuthGuard(config.AUTH_FAILURES_PER_MIN);
  const clientIp = (req: Request) => server?.requestIP(req)?.address ?? "unknown";

  const readiness = (): Readiness => {
    const sqlite = store.healthy();
    const outbox = store.outboxStats();
    const checks: Readiness["checks"] = {
      sqlite: { ok: sqlite },
      identity: { ok: identity.healthy(), backend: identity.kind },
      // Down Redis degrades the bus, not readiness: each instance still serves its own sockets.
      bus: {
        ok: bus.healthy(),
        kind: config.REDIS_URL ? "redis" : "local",
        state: bus.healthy() ? "up" : redisShape?.().unsupported ? "unsupported" : "degraded",
        ...(redisShape ? { redis: redisShape() } : {}),
      },
      outbox: {
        ok: true,
        backlog: outbox.backlog,
        oldest_age_s: outbox.oldestAt === null ? 0 : Math.max(0, (now() - outbox.oldestAt) / 1000),
      },
      // MongoDB down is degraded, not unready: messages are accepted and served from SQLite.
      mongo: flusher ? { ...flusher.status(), configured: true } : { ok: true, configured: false },
    };
    // Identity and bus trouble degrade the service without making it useless: open chats go on.
    checks.shutdown = { ok: !draining };
    return { ready: !draining && sqlite, checks };
  };

  metrics.registry.gauge("chat_ws_connections", "Open WebSocket connections", () => sockets.size);
  metrics.registry.gauge(
    "chat_users_online",
    "Users with at least one connection here",
    () => presence.localUsers,
  );
  metrics.registry.gauge(
    "chat_outbox_backlog",
    "Outbox rows not yet confirmed by MongoDB",
    () => store.outboxStats().backlog,
  );
  metrics.registry.gauge("chat_outbox_oldest_age_seconds", "Age of the oldest unflushed outbox row", () => {
    const { oldestAt } = store.outboxStats();
    return oldestAt === null ? 0 : Math.max(0, (now() - oldestAt) / 1000);
  });
  metrics.registry.gauge("chat_up", "Component health (1 up, 0 down)", () => [
    [{ component: "sqlite" }, store.healthy() ? 1 : 0],
    [{ component: "identity", backend: identity.kind }, identity.healthy() ? 1 : 0],
    [{ component: "bus", kind: config.REDIS_URL ? "redis" : "local" }, bus.healthy() ? 1 : 0],
    ...[...metrics.componentUp].map(([component, up]): [{ component: string }, number] => [
      { component },
      up ? 1 : 0,
    ]),
  ]);
  metrics.registry.gauge("chat_draining", "1 while shutting down (unready, closing connections)", () =>
    draining ? 1 : 0,
  );

  // Imported only when on, so the demo's bundling costs nothing otherwise.
  const extend = config.DEMO_PAGE
    ? await (await import("./demo/routes.ts")).createDemoRoutes({
        config,
        directoryIdentity: !overrides.identity && identity.kind === "directory",
        logger,
      })
    : undefined;
  const app = createHttpApp({
    store,
    identity,
    presence: (u) => presence.status(u),
    restBuckets: new KeyedBuckets(config.RATE_REST_PER_MIN / 60, config.RATE_REST_PER_MIN),
    originAllowed,
    metrics,
    logger,
    readiness,
    metricsToken: config.METRICS_TOKEN,
    authFailures,
    clientIp,
    extend,
    history,
  });
  const upgrade = createUpgradeHandler({
    identity,
    chat,
    presence,
    watch: (id) => bus.watch(id),
    unwatch: (id) => bus.unwatch(id),
    originAllowed,
    metrics,
    logger,
    rate: { perS: config.RATE_MESSAGES_PER_S, burst: config.RATE_MESSAGES_BURST },
    maxConnectionsPerUser: config.MAX_CONNECTIONS_PER_USER,
    isDraining: () => draining,
    authFailures,
    clientIp,
  });
  const session = createSessionHandlers({
    chat,
    store,
    identity,
    presence,
    unwatch: (id) => bus.unwatch(id),
    userBuckets: new KeyedBuckets(config.RATE_USER_MESSAGES_PER_S, config.RATE_USER_MESSAGES_BURST),
    metrics,
    logger,
    now,
    publishLocal: (topic, frame) => {
      server?.publish(topic, frame);
    },
    sockets,
  });

  server = Bun.serve<SessionData>({
    port: config.PORT,
    hostname: config.HOST,
    fetch(req, srv) {
      if (new URL(req.url).pathname === "/ws") return upgrade(req, srv);
      return app.fetch(req, srv);
    },
    websocket: {
      maxPayloadLength: config.MAX_FRAME_BYTES,
      idleTimeout: config.HEARTBEAT_IDLE_S,
      sendPings: true,
      backpressureLimit: config.SEND_BUFFER_LIMIT_BYTES,
      closeOnBackpressureLimit: true,
      open: session.open,
      drain: session.drain,
      message: session.message,
      close: session.close,
    },
  });

  let stopped: Promise<void> | undefined;
  const shutdown = (reason = "shutdown") => {
    stopped ??= (async () => {
      draining = true;
      logger.info("shutting down", { reason, connections: sockets.size });
      // Unready first, then wait, so the load balancer's next probe moves traffic away while
      // open chats still work; only then are they told to reconnect elsewhere.
      if (config.SHUTDOWN_DRAIN_DELAY_MS > 0) await Bun.sleep(config.SHUTDOWN_DRAIN_DELAY_MS);
      // Commit what is queued first, so those senders still get their ack.
      committer.flushNow();
      await new Promise((r) => setImmediate(r));
      for (const ws of sockets) ws.close(1001, "server restarting; reconnect with since=<last id>");
      await server?.stop(true);
      await presence.close();
      await bus.close();
      committer.flushNow();
      // A last flush, bounded; whatever is left stays in the SQLite outbox for the next start.
      await flusher?.stop(config.MONGO_SHUTDOWN_FLUSH_MS);
      store.close();
      logger.info("stopped");
    })();
    return stopped;
  };

  flusher?.start();
  const port = server.port ?? config.PORT;
  logger.info("listening", { port, identity: identity.kind, sqlite: config.SQLITE_PATH });
  return { server, app, url: `http://127.0.0.1:${port}`, port, shutdown };
}

/**
 * The bus and the presence view: in-process without REDIS_URL; otherwise shared through Redis,
 * with frames relayed from other instances kept in this instance's store before delivery.
 */
async function createFanout(
  config: Config,
  deps: {
    deliver: Deliver;
    store: ChatStore;
    committer: ReturnType<typeof createGroupCommitter>;
    metrics: Metrics;
    logger: Logger;
    now: () => number;
  },
): Promise<{ bus: Bus; presence: Presence; redisShape?: () => RedisShape }> {
  const tracker = new PresenceTracker();
  // last_seen rides along with the next group commit: an fsync per connect would make a
  // reconnect storm crawl.
  const lastSeen: LastSeenStore = {
    touchPresence: (userId, at) => {
      deps.committer
        .submit(() => deps.store.touchPresence(userId, at))
        .catch(() => {
          // Advisory only; the store may be closing at shutdown.
        });
    },
    lastSeen: (userId) => deps.store.lastSeen(userId),
  };
  if (!config.REDIS_URL) {
    return {
      bus: createLocalBus(deps.deliver),
      presence: createLocalPresence(tracker, lastSeen, deps.now),
    };
  }
  const instanceId = config.INSTANCE_ID ?? `i-${crypto.randomUUID().slice(0, 8)}`;
  let bus: ReturnType<typeof createRedisBus> | undefined;
  const conversationChannels = `${config.REDIS_PREFIX}c:`;
  const link = await connectRedis({
    url: config.REDIS_URL,
    logger: deps.logger,
    onMessage: (channel, message) => bus?.receive(channel, message),
    // On a cluster, a conversation's frames go to the one shard owning its channel.
    sharded: (channel) => channel.startsWith(conversationChannels),
  });
  bus = createRedisBus({
    link,
    prefix: config.REDIS_PREFIX,
    instanceId,
    deliver: deps.deliver,
    accept: createRelayAccept({
      store: deps.store,
      committer: deps.committer,
    }),
    logger: deps.logger,
    registry: deps.metrics.registry,
  });
  const presence = createRedisPresence({
    link,
    prefix: config.REDIS_PREFIX,
    instanceId,
    tracker,
    store: lastSeen,
    ttlS: config.PRESENCE_TTL_S,
    logger: deps.logger,
    now: deps.now,
  });
  deps.logger.info("redis fan-out", { instance: instanceId, prefix: config.REDIS_PREFIX, up: link.up });
  return { bus, presence, redisShape: link.shape };
}
