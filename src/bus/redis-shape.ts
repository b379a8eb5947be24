import { RedisClient } from "bun";
import { z } from "zod";
import { createClusterLink } from "./redis-cluster-link.ts";
import { createRedisLink, type LinkOptions, linkHooks, type RedisLink } from "./redis-link.ts";

/**
 * One REDIS_URL, two shapes: a single Redis (or a primary behind a failover proxy) gets the
 * single-server link over Bun's client, unchanged; a Redis Cluster gets the cluster link. The
 * shape is asked of the server (INFO), not configured, so a managed Redis that turns out to be
 * a cluster is never spoken to as if it were one server (MOVED errors, presence answered from
 * the wrong node). Until the server has answered once, the link is down and the instance runs
 * on its own, as with a Redis that is down at start.
 *
 * What the server cannot do is said at start and kept for /readyz: below Redis 6.2 the
 * heartbeat's `SET … GET` does not exist, so the link refuses to come up rather than report
 * everyone offline; a cluster below 7.0 has no sharded pub/sub and falls back to classic
 * channels (correct, but every frame is a cluster-wide broadcast).
 */

export interface RedisShape {
  mode: "unknown" | "single" | "cluster";
  version?: string;
  /** How conversation channels travel. */
  pubsub?: "classic" | "sharded";
  /** Why the link will not come up on this server. */
  unsupported?: string;
  /** What works, but not as well as it could. */
  notes: string[];
}

export interface ShapedLink extends RedisLink {
  shape(): RedisShape;
}

export interface ConnectOptions extends LinkOptions {
  /** Channels that go over sharded pub/sub on a cluster (the per-conversation ones). */
  sharded: (channel: string) => boolean;
}

const infoSchema = z.object({
  redis_version: z.string().regex(/^\d+\.\d+/),
  cluster_enabled: z.enum(["0", "1"]).default("0"),
});

function parseInfo(text: string): z.infer<typeof infoSchema> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0 && !line.startsWith("#")) fields[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return infoSchema.parse(fields);
}

const atLeast = (version: string, major: number, minor: number) => {
  const [ma = 0, mi = 0] = version.split(".").map(Number);
  return ma > major || (ma === major && mi >= minor);
};

/** What this service can do on a server that answers INFO server + INFO cluster with `info`. */
export function shapeFromInfo(info: string): RedisShape {
  const fields = parseInfo(info);
  const version = fields.redis_version;
  const cluster = fields.cluster_enabled === "1";
  const shape: RedisShape = { mode: cluster ? "cluster" : "single", version, notes: [] };
  if (!atLeast(version, 6, 2)) {
    shape.unsupported = `Redis ${version} is older than 6.2 (presence heartbeats need SET … GET)`;
  } else if (!cluster) {
    shape.pubsub = "classic";
  } else if (atLeast(version, 7, 0)) {
    shape.pubsub = "sharded";
  } else {
    shape.pubsub = "classic";
    shape.notes.push(
      `Redis ${version} has no sharded pub/sub (7.0+): every conversation's frames are broadcast to all cluster nodes`,
    );
  }
  return shape;
}

/** Asks the server at `url` what it is; throws while it cannot be reached. */
export async function probeRedis(url: string, timeoutMs = 2000): Promise<RedisShape> {
  const c = new RedisClient(url, {
    autoReconnect: false,
    enableOfflineQueue: false,
    connectionTimeout: timeoutMs,
  });
  try {
    await c.connect();
    // "everything" would be large on a busy server; these two sections say what we need.
    return shapeFromInfo(`${await c.send("INFO", ["server"])}\n${await c.send("INFO", ["cluster"])}`);
  } finally {
    c.close();
  }
}

export async function connectRedis(opts: ConnectOptions): Promise<ShapedLink> {
  const checkEveryMs = opts.checkEveryMs ?? 1000;
  let shape: RedisShape = { mode: "unknown", notes: [] };
  let inner: RedisLink | null = null;
  const channels = new Set<string>();
  const hooks = linkHooks(opts.logger);
  let closed = false;
  let probing: Promise<void> | null = null;
  let timer: ReturnType<typeof setInterval> | undefined;
  let reported = "";

  const open = async (found: RedisShape) => {
    const link =
      found.mode === "cluster"
        ? await createClusterLink({ ...opts, shardedPubSub: found.pubsub === "sharded" })
        : await createRedisLink(opts);
    if (closed) {
      await link.close();
      return;
    }
    link.onUp(hooks.up);
    link.onDown(hooks.down);
    inner = link;
    // Channels asked for before the shape was known, and the first "up" that the inner
    // link announced before these hooks existed.
    await Promise.all([...channels].map((ch) => link.subscribe(ch)));
    if (link.up) {
      hooks.up();
    }
  };

  const probe = async () => {
    let found: RedisShape;
    try {
      found = await probeRedis(opts.url, opts.timeoutMs);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (reported !== why)
        opts.logger.warn("redis not reachable; retrying in the background", { error: why });
      reported = why;
      return;
    }
    shape = found;
    if (found.unsupported) {
      if (reported !== found.unsupported) {
        opts.logger.error("redis server not supported; running without the shared bus", {
          reason: found.unsupported,
        });
      }
      reported = found.unsupported;
      return;
    }
    for (const note of found.notes) opts.logger.warn(`redis: ${note}`);
    opts.logger.info("redis shape", { mode: found.mode, version: found.version, pubsub: found.pubsub });
    clearInterval(timer);
    await open(found);
  };

  await probe();
  if (!inner && !closed) {
    timer = setInterval(() => {
      if (inner || closed) return;
      probing ??= probe().finally(() => {
        probing = null;
      });
    }, checkEveryMs);
  }

  return {
    shape: () => shape,
    get up() {
      return inner?.up ?? false;
    },
    get reconnects() {
      return inner?.reconnects ?? 0;
    },
    command(name, args) {
      if (!inner) return Promise.reject(new Error("redis link is down"));
      return inner.command(name, args);
    },
    publish(channel, message) {
      if (!inner) return Promise.reject(new Error("redis link is down"));
      return inner.publish(channel, message);
    },
    async subscribe(channel) {
      channels.add(channel);
      await inner?.subscribe(channel);
    },
    unsubscribe(channel) {
      channels.delete(channel);
      inner?.unsubscribe(channel);
    },
    onUp: hooks.onUp,
    onDown: hooks.onDown,
    async close() {
      closed = true;
      clearInterval(timer);
      await probing;
      await inner?.close();
    },
  };
}
