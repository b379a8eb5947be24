import type { Server } from "bun";
import { createLocalBus } from "./bus/local.ts";
import type { Bus } from "./bus/types.ts";
import type { Config } from "./config.ts";
import { createChat } from "./domain/chat.ts";
import { PresenceTracker } from "./domain/presence.ts";
import { KeyedBuckets } from "./domain/rate.ts";
import { createHttpApp, type Readiness } from "./http/app.ts";
import { compileOrigins } from "./http/origin.ts";
import { createIdentity } from "./identity/index.ts";
import type { Identity } from "./identity/types.ts";
import { createObjectIdGenerator } from "./ids.ts";
import type { Logger } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { createGroupCommitter } from "./store/group-commit.ts";
import { openStore } from "./store/sqlite.ts";
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
  const committer = createGroupCommitter({
    transaction: store.transaction,
    onBatch: (n) => metrics.commitBatch.observe(n),
  });
  const { identity, notes } = overrides.identity
    ? { identity: overrides.identity, notes: [] }
    : createIdentity(config, logger);
  for (const note of notes) logger.warn(note);

  const presence = new PresenceTracker();
  const sockets = new Set<ChatSocket>();
  let draining = false;
  let server: Server<SessionData> | undefined;

  const bus: Bus = createLocalBus((topic, frame) => {
    server?.publish(topic, frame);
  });
  const chat = createChat({
    store,
    committer,
    bus,
    newId: createObjectIdGenerator(now),
    now,
    metrics,
    maxMessageChars: config.MAX_MESSAGE_CHARS,
  });
  const originAllowed = compileOrigins(config.ALLOWED_ORIGINS);

  const readiness = (): Readiness => {
    const sqlite = store.healthy();
    const outbox = store.outboxStats();
    const checks: Readiness["checks"] = {
      sqlite: { ok: sqlite },
      identity: { ok: identity.healthy(), backend: identity.kind },
      bus: { ok: bus.healthy(), kind: config.REDIS_URL ? "redis" : "local" },
      outbox: {
        ok: true,
        backlog: outbox.backlog,
        oldest_age_s: outbox.oldestAt === null ? 0 : Math.max(0, (now() - outbox.oldestAt) / 1000),
      },
    };
    // Identity and bus trouble degrade the service without making it useless: open chats go on.
    return { ready: !draining && sqlite, checks };
  };

  metrics.registry.gauge("chat_ws_connections", "Open WebSocket connections", () => sockets.size);
  metrics.registry.gauge(
    "chat_users_online",
    "Users with at least one connection here",
    () => presence.onlineUsers,
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
    [{ component: "identity" }, identity.healthy() ? 1 : 0],
    [{ component: "bus" }, bus.healthy() ? 1 : 0],
  ]);

  const app = createHttpApp({
    store,
    identity,
    isOnline: (u) => presence.isOnline(u),
    restBuckets: new KeyedBuckets(config.RATE_REST_PER_MIN / 60, config.RATE_REST_PER_MIN),
    originAllowed,
    metrics,
    logger,
    readiness,
    metricsToken: config.METRICS_TOKEN,
  });
  const upgrade = createUpgradeHandler({
    identity,
    chat,
    presence,
    originAllowed,
    metrics,
    logger,
    rate: { perS: config.RATE_MESSAGES_PER_S, burst: config.RATE_MESSAGES_BURST },
    maxConnectionsPerUser: config.MAX_CONNECTIONS_PER_USER,
    isDraining: () => draining,
  });
  const session = createSessionHandlers({
    chat,
    store,
    committer,
    identity,
    presence,
    userBuckets: new KeyedBuckets(config.RATE_USER_MESSAGES_PER_S, config.RATE_USER_MESSAGES_PER_S * 2),
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
      message: session.message,
      close: session.close,
    },
  });

  let stopped: Promise<void> | undefined;
  const shutdown = (reason = "shutdown") => {
    stopped ??= (async () => {
      draining = true;
      logger.info("shutting down", { reason, connections: sockets.size });
      // Commit what is queued first, so those senders still get their ack.
      committer.flushNow();
      await new Promise((r) => setImmediate(r));
      for (const ws of sockets) ws.close(1001, "server restarting; reconnect with since=<last id>");
      await server?.stop(true);
      await bus.close();
      committer.flushNow();
      store.close();
      logger.info("stopped");
    })();
    return stopped;
  };

  const port = server.port ?? config.PORT;
  logger.info("listening", { port, identity: identity.kind, sqlite: config.SQLITE_PATH });
  return { server, url: `http://127.0.0.1:${port}`, port, shutdown };
}
