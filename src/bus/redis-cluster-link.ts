import { Cluster, type ClusterOptions } from "ioredis";
import type { Logger } from "../log.ts";
import { type LinkOptions, linkState, type RedisLink, superviseLink, Timeout, within } from "./redis-link.ts";

/**
 * The same link as `createRedisLink`, to a Redis Cluster, through ioredis (Bun's client has no
 * cluster mode and no SSUBSCRIBE). ioredis keeps the slot map, routes each command by its key,
 * and follows MOVED and ASK. Channels that pass `sharded` use sharded pub/sub (SPUBLISH and
 * SSUBSCRIBE, one subscriber connection per master), so a conversation's frames travel to the
 * one shard that owns its channel; the rest (the control channel) stay classic, which the
 * cluster broadcasts to every node, as they should reach every instance.
 *
 * Recovery is owned here as in the single-server link, and for the same reason: a node that
 * died or was replaced (failover) leaves ioredis with stale connections and subscriptions, and
 * a half-working bus would drop frames for some conversations without anyone noticing. So the
 * link checks every master it knows on a timer (PING, and CLUSTER INFO for cluster_state:ok);
 * any failure drops the whole client, and a fresh one is dialled each tick from every node
 * address ever seen (the seed may be the node that died) until the cluster answers again. Then
 * callers get `onUp`, as after a Redis restart: resubscribe, rewrite presence, replay.
 */

export interface ClusterLinkOptions extends LinkOptions {
  /** Whether a channel goes over sharded pub/sub. */
  sharded: (channel: string) => boolean;
  /** False on Redis < 7 (no SPUBLISH): every channel is then classic. */
  shardedPubSub: boolean;
}

/** Server replies that mean "not now" rather than "wrong command". */
const OUTAGE_REPLY = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING)/;

function isOutage(err: unknown): boolean {
  if (err instanceof Timeout) return true;
  if (!(err instanceof Error)) return true;
  if (err.name !== "ReplyError") return true;
  return OUTAGE_REPLY.test(err.message);
}

function clusterOptions(url: URL, timeoutMs: number, shardedSubscribers: boolean): ClusterOptions {
  return {
    shardedSubscribers,
    lazyConnect: true,
    // Our own timer redials; ioredis' queues and retries would hide an outage from callers.
    enableOfflineQueue: false,
    clusterRetryStrategy: () => null,
    retryDelayOnClusterDown: 0,
    retryDelayOnTryAgain: 0,
    slotsRefreshTimeout: timeoutMs,
    redisOptions: {
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: url.password ? decodeURIComponent(url.password) : undefined,
      tls: url.protocol === "rediss:" ? {} : undefined,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
    },
  };
}

type Node = { host: string; port: number };

export async function createClusterLink(opts: ClusterLinkOptions): Promise<RedisLink> {
  const checkEveryMs = opts.checkEveryMs ?? 1000;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const url = new URL(opts.url);
  const logger: Logger = opts.logger;
  const seeds = new Map<string, Node>();
  const addSeed = (host: string, port: number) => seeds.set(`${host}:${port}`, { host, port });
  addSeed(url.hostname, Number(url.port || 6379));
  /** Wanted channels, and whether each is sharded. */
  const channels = new Map<string, boolean>();
  let client: Cluster | null = null;

  const isSharded = (channel: string) => opts.shardedPubSub && opts.sharded(channel);
  const listener = (channel: string, message: string) => opts.onMessage(channel, message);

  const subscribeOn = (c: Cluster, channel: string, sharded: boolean) =>
    sharded ? c.ssubscribe(channel) : c.subscribe(channel);

  const drop = () => {
    const c = client;
    client = null;
    if (!c) return;
    c.removeAllListeners();
    // A dropped client may still emit errors while it tears down.
    c.on("error", () => undefined);
    c.disconnect();
  };

  const state = linkState({ name: "redis cluster", logger, drop });
  const markDown = (reason: unknown) => state.markDown(reason);

  /** Every master's PING, and the cluster's own verdict on its slots. */
  const healthy = async (c: Cluster) => {
    const masters = c.nodes("master");
    const expected = new Set(c.slots.map((owners) => owners?.[0]).filter(Boolean)).size;
    if (masters.length < expected) throw new Error(`${expected - masters.length} master(s) unreachable`);
    await Promise.all(masters.map((m) => m.ping()));
    const info = String(await c.call("CLUSTER", "INFO"));
    if (!info.includes("cluster_state:ok")) throw new Error("cluster_state is not ok");
  };

  const dial = async () => {
    const c = new Cluster([...seeds.values()], clusterOptions(url, timeoutMs, opts.shardedPubSub));
    c.on("error", () => undefined);
    c.on("message", listener);
    c.on("smessage", listener);
    const wanted = [...channels];
    try {
      await within(c.connect(), timeoutMs, "cluster connect");
      await within(healthy(c), timeoutMs, "cluster health check");
      await within(
        Promise.all(wanted.map(([ch, sharded]) => subscribeOn(c, ch, sharded))),
        timeoutMs,
        "cluster subscribe",
      );
    } catch (err) {
      c.removeAllListeners();
      c.on("error", () => undefined);
      c.disconnect();
      throw err;
    }
    if (state.closed) {
      c.disconnect();
      return;
    }
    for (const n of c.nodes("all")) addSeed(n.options.host ?? "127.0.0.1", n.options.port ?? 6379);
    client = c;
    state.up = true;
    const late = [...channels].filter(([ch]) => !wanted.some(([w]) => w === ch));
    for (const [ch, sharded] of late) subscribeOn(c, ch, sharded).catch((err) => markDown(err));
    state.restored({ channels: channels.size, nodes: seeds.size });
  };

  const supervisor = await superviseLink({
    everyMs: checkEveryMs,
    isUp: () => state.up && client !== null,
    dial,
    async check() {
      try {
        await within(healthy(client!), timeoutMs, "cluster health check");
      } catch (err) {
        markDown(err);
      }
    },
    name: "redis cluster",
    logger,
  });

  return state.link(
    {
      async command(name, args) {
        const c = client;
        if (!state.up || !c) throw new Error("redis link is down");
        try {
          return await within(c.call(name, ...args), timeoutMs, `cluster ${name}`);
        } catch (err) {
          if (isOutage(err)) markDown(err);
          throw err;
        }
      },
      async publish(channel, message) {
        const c = client;
        if (!state.up || !c) throw new Error("redis link is down");
        try {
          await within(
            isSharded(channel) ? c.spublish(channel, message) : c.publish(channel, message),
            timeoutMs,
            "cluster publish",
          );
        } catch (err) {
          markDown(err);
          throw err;
        }
      },
      async subscribe(channel) {
        if (channels.has(channel)) return;
        const sharded = isSharded(channel);
        channels.set(channel, sharded);
        const c = client;
        if (!state.up || !c) return;
        try {
          await within(subscribeOn(c, channel, sharded), timeoutMs, "cluster subscribe");
        } catch (err) {
          markDown(err);
        }
      },
      unsubscribe(channel) {
        const sharded = channels.get(channel);
        if (sharded === undefined) return;
        channels.delete(channel);
        const c = client;
        if (!state.up || !c) return;
        (sharded ? c.sunsubscribe(channel) : c.unsubscribe(channel)).catch((err: unknown) => markDown(err));
      },
    },
    supervisor,
  );
}
