import type { RedisShape } from "./bus/redis-shape.ts";
import type { Readiness } from "./http/app.ts";
import type { Metrics } from "./metrics.ts";

/**
 * What /readyz reports and the gauges that say the same to Prometheus, from one set of probes.
 * Down Redis, identity or MongoDB degrade the service without making it unready: open chats go
 * on and messages are accepted into SQLite. Only a broken SQLite, a disk too short to take
 * messages, or a drain make it unready.
 */

export interface Probes {
  store: {
    healthy(): boolean;
    outboxStats(): { backlog: number; oldestAt: number | null };
    clientIdStats(): { bytes: number; loads: number };
    messageLogStats(): { rows: number; conversations: number };
  };
  identity: { healthy(): boolean; readonly kind: string };
  /** With Django: the latest look at DJANGO_BASE_URL (identity/probe.ts); none while under way. */
  identityProbe?: () => (Record<string, unknown> & { ok: boolean }) | undefined;
  /** `redis`: what the server turned out to be (single or cluster, version, what it cannot do). */
  bus: { healthy(): boolean; kind: "redis" | "local"; redis?: () => RedisShape };
  mongo?: () => Record<string, unknown> & { ok: boolean };
  /** The SQLite volume: free space above DISK_MIN_FREE_MB and the last commit not failed for lack of it. */
  disk: () => Record<string, unknown> & { ok: boolean };
  /** Durable copies an ack waits for (ACK_COPIES), and what this instance can give now. */
  copies: () => Record<string, unknown> & { ok: boolean };
  /** The notifier, when a sink is configured; a failing sink degrades, it does not unready. */
  notify?: () => Record<string, unknown> & { ok: boolean };
  sockets: () => number;
  localUsers: () => number;
  isDraining: () => boolean;
  now: () => number;
}

const ageS = (oldestAt: number | null, now: number) =>
  oldestAt === null ? 0 : Math.max(0, (now - oldestAt) / 1000);

function busCheck(bus: Probes["bus"]): Readiness["checks"][string] {
  const ok = bus.healthy();
  const redis = bus.redis?.();
  const state = ok ? "up" : redis?.unsupported ? "unsupported" : "degraded";
  return { ok, kind: bus.kind, state, ...(redis ? { redis } : {}) };
}

export function createReadiness(p: Probes): () => Readiness {
  return () => {
    const sqlite = p.store.healthy();
    const outbox = p.store.outboxStats();
    const checks: Readiness["checks"] = {
      sqlite: { ok: sqlite },
      identity: identityCheck(p),
      bus: busCheck(p.bus),
      outbox: { ok: true, backlog: outbox.backlog, oldest_age_s: ageS(outbox.oldestAt, p.now()) },
      mongo: p.mongo ? { ...p.mongo(), configured: true } : { ok: true, configured: false },
      copies: p.copies(),
      notify: p.notify ? { ...p.notify(), configured: true } : { ok: true, configured: false },
    };
    checks.disk = p.disk();
    checks.shutdown = { ok: !p.isDraining() };
    return { ready: !p.isDraining() && sqlite && checks.disk.ok, checks };
  };
}

/** A misconfigured DJANGO_BASE_URL shows here, named; identity never makes the service unready. */
function identityCheck(p: Probes): Readiness["checks"][string] {
  const probe = p.identityProbe?.();
  return {
    ok: p.identity.healthy() && probe?.ok !== false,
    backend: p.identity.kind,
    ...(probe ? { probe } : {}),
  };
}

export function registerGauges(metrics: Metrics, p: Probes): void {
  const r = metrics.registry;
  r.gauge("chat_ws_connections", "Open WebSocket connections", p.sockets);
  r.gauge("chat_users_online", "Users with at least one connection here", p.localUsers);
  r.gauge(
    "chat_outbox_backlog",
    "Outbox rows not yet confirmed by MongoDB",
    () => p.store.outboxStats().backlog,
  );
  r.gauge("chat_outbox_oldest_age_seconds", "Age of the oldest unflushed outbox row", () =>
    ageS(p.store.outboxStats().oldestAt, p.now()),
  );
  r.gauge("chat_up", "Component health (1 up, 0 down)", () => [
    [{ component: "sqlite" }, p.store.healthy() ? 1 : 0],
    [{ component: "identity", backend: p.identity.kind }, p.identity.healthy() ? 1 : 0],
    [{ component: "bus", kind: p.bus.kind }, p.bus.healthy() ? 1 : 0],
    ...[...metrics.componentUp].map(([component, up]): [{ component: string }, number] => [
      { component },
      up ? 1 : 0,
    ]),
  ]);
  r.gauge(
    "chat_client_id_sets_bytes",
    "Memory of the in-memory client_id check",
    () => p.store.clientIdStats().bytes,
  );
  r.gauge(
    "chat_client_id_set_loads",
    "Conversations whose client_id set was read from SQLite (first use, or again after the budget dropped it)",
    () => p.store.clientIdStats().loads,
  );
  r.gauge(
    "chat_message_log_rows",
    "New messages waiting in the log to move to their conversation (about 65,536 at most; message-log.ts)",
    () => p.store.messageLogStats().rows,
  );
  r.gauge("chat_draining", "1 while shutting down (unready, closing connections)", () =>
    p.isDraining() ? 1 : 0,
  );
}
