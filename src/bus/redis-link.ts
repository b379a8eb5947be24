import { RedisClient } from "bun";
import type { Logger } from "../log.ts";

/**
 * Two connections to one Redis: one for commands (publish, presence) and one in subscriber
 * mode. Bun's client notices a dead server late (its `connected` stays true and `onclose`
 * may never run) and, after a restart, reconnects without its subscriptions, so this link
 * owns recovery itself: it pings both connections on a timer, and on any failure drops both
 * and dials fresh ones, resubscribing every channel it was asked for. Callers see `up` and
 * get `onUp` after each (re)connect to repair what a restarted Redis forgot.
 */

export interface RedisLink {
  readonly up: boolean;
  /** The command connection; throws while the link is down so callers fall back at once. */
  command(name: string, args: string[]): Promise<unknown>;
  publish(channel: string, message: string): Promise<void>;
  /** Adds a channel; resolves once Redis confirmed it, or at once while the link is down. */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): void;
  onUp(hook: () => void): void;
  onDown(hook: () => void): void;
  close(): Promise<void>;
  /** Reconnections since start (for /metrics). */
  readonly reconnects: number;
}

export interface LinkOptions {
  url: string;
  logger: Logger;
  onMessage: (channel: string, message: string) => void;
  /** How often to ping, and to retry while down. */
  checkEveryMs?: number;
  /** A ping or dial slower than this counts as a failure. */
  timeoutMs?: number;
}

/* What both links (this one and redis-cluster-link.ts) share: the deadline, the hooks, the state, the loop. */

export class Timeout extends Error {}

export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Timeout(`redis ${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A link's onUp/onDown hooks; an onUp hook that throws is logged and the others still run. */
export function linkHooks(logger: Logger) {
  const upHooks: Array<() => void> = [];
  const downHooks: Array<() => void> = [];
  return {
    onUp(hook: () => void) {
      upHooks.push(hook);
    },
    onDown(hook: () => void) {
      downHooks.push(hook);
    },
    up() {
      for (const h of upHooks) {
        try {
          h();
        } catch (err) {
          logger.error("redis onUp hook failed", { error: err });
        }
      }
    },
    down() {
      for (const h of downHooks) h();
    },
  };
}

/**
 * Up or down, and how often it came back: the state both links keep, with the two transitions
 * they share. Down drops the connections and tells the onDown hooks once; a dial that succeeded
 * sets `up` itself, then calls `restored`.
 */
export function linkState(o: { name: string; logger: Logger; drop: () => void }) {
  const hooks = linkHooks(o.logger);
  let everUp = false;
  const state = {
    up: false,
    closed: false,
    reconnects: 0,
    markDown(reason: unknown): void {
      if (!state.up) return;
      state.up = false;
      o.drop();
      o.logger.warn(`${o.name} link down; delivering locally only until it returns`, {
        error: reason instanceof Error ? reason.message : String(reason),
      });
      hooks.down();
    },
    /** A reconnect (not the first connect) is counted and logged; the onUp hooks run. */
    restored(fields: Record<string, number>): void {
      if (everUp) {
        state.reconnects++;
        o.logger.info(`${o.name} link restored`, fields);
      }
      everUp = true;
      hooks.up();
    },
    /** The RedisLink around a link's own operations: the getters, the hooks and close are the same. */
    link(
      ops: Pick<RedisLink, "command" | "publish" | "subscribe" | "unsubscribe">,
      supervisor: { stop(): Promise<void> },
    ): RedisLink {
      return {
        get up() {
          return state.up;
        },
        get reconnects() {
          return state.reconnects;
        },
        ...ops,
        onUp: hooks.onUp,
        onDown: hooks.onDown,
        async close() {
          state.closed = true;
          await supervisor.stop();
          state.up = false;
          o.drop();
        },
      };
    },
  };
  return state;
}

/**
 * The recovery loop: dial now (a failure is not fatal: the service starts degraded and keeps
 * trying), then every `everyMs` check the connection while up, or dial again while down.
 */
export async function superviseLink(o: {
  everyMs: number;
  isUp: () => boolean;
  dial: () => Promise<void>;
  /** Finds out whether the live connection still works (and marks the link down if not). */
  check: () => Promise<void>;
  /** For the log line when the first dial fails: "redis", "redis cluster". */
  name: string;
  logger: Logger;
}): Promise<{ stop(): Promise<void> }> {
  let stopped = false;
  let dialing: Promise<void> | null = null;
  const tick = async () => {
    if (stopped) return;
    if (!o.isUp()) {
      dialing ??= o
        .dial()
        .catch(() => {
          // Still down; the next tick tries again.
        })
        .finally(() => {
          dialing = null;
        });
      return dialing;
    }
    await o.check();
  };
  const timer = setInterval(tick, o.everyMs);
  try {
    await o.dial();
  } catch (err) {
    o.logger.warn(`${o.name} not reachable at start; retrying in the background`, {
      error: err instanceof Error ? err.message : String(err),
    });
  }
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await dialing;
    },
  };
}

export async function createRedisLink(opts: LinkOptions): Promise<RedisLink> {
  const checkEveryMs = opts.checkEveryMs ?? 1000;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const channels = new Set<string>();
  let cmd: RedisClient | null = null;
  let sub: RedisClient | null = null;
  const listener = (message: string, channel: string) => opts.onMessage(channel, message);

  const newClient = () =>
    new RedisClient(opts.url, {
      // Recovery is ours (see above); queued commands would hide an outage from callers.
      autoReconnect: false,
      enableOfflineQueue: false,
      connectionTimeout: timeoutMs,
    });

  const drop = () => {
    for (const c of [cmd, sub]) {
      try {
        c?.close();
      } catch {
        // already closed
      }
    }
    cmd = null;
    sub = null;
  };

  const state = linkState({ name: "redis", logger: opts.logger, drop });
  const markDown = (reason: unknown) => state.markDown(reason);

  const dial = async () => {
    const c = newClient();
    const s = newClient();
    const wanted = [...channels];
    try {
      await within(Promise.all([c.connect(), s.connect()]), timeoutMs, "connect");
      if (wanted.length > 0) await within(s.subscribe(wanted, listener), timeoutMs, "subscribe");
    } catch (err) {
      c.close();
      s.close();
      throw err;
    }
    if (state.closed) {
      c.close();
      s.close();
      return;
    }
    cmd = c;
    sub = s;
    state.up = true;
    // Channels asked for while this dial was in flight.
    const late = [...channels].filter((ch) => !wanted.includes(ch));
    if (late.length > 0) s.subscribe(late, listener).catch((err) => markDown(err));
    state.restored({ channels: channels.size });
  };

  const supervisor = await superviseLink({
    everyMs: checkEveryMs,
    isUp: () => state.up,
    dial,
    async check() {
      try {
        await within(Promise.all([cmd!.send("PING", []), sub!.ping()]), timeoutMs, "ping");
      } catch (err) {
        markDown(err);
      }
    },
    name: "redis",
    logger: opts.logger,
  });

  return state.link(
    {
      async command(name, args) {
        if (!state.up || !cmd) throw new Error("redis link is down");
        try {
          return await within(cmd.send(name, args), timeoutMs, name);
        } catch (err) {
          // A server error (bad script, wrong type) is not an outage.
          if (err instanceof Timeout || (err as { code?: string }).code === "ERR_REDIS_CONNECTION_CLOSED")
            markDown(err);
          throw err;
        }
      },
      async publish(channel, message) {
        if (!state.up || !cmd) throw new Error("redis link is down");
        try {
          await within(cmd.publish(channel, message), timeoutMs, "publish");
        } catch (err) {
          markDown(err);
          throw err;
        }
      },
      async subscribe(channel) {
        if (channels.has(channel)) return;
        channels.add(channel);
        if (!state.up || !sub) return;
        try {
          await within(sub.subscribe(channel, listener), timeoutMs, "subscribe");
        } catch (err) {
          // The channel stays wanted; the reconnect subscribes it.
          markDown(err);
        }
      },
      unsubscribe(channel) {
        if (!channels.delete(channel)) return;
        if (!state.up || !sub) return;
        sub.unsubscribe(channel).catch((err) => markDown(err));
      },
    },
    supervisor,
  );
}
