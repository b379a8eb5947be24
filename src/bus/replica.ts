import { z } from "zod";
import type { Copies, CopiesStatus, CopyKeeper } from "../domain/copies.ts";
import type { KeepReplica } from "../domain/relay.ts";
import type { Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { COPIED_KINDS } from "../model/outbox.ts";
import type { Conversation } from "../model/types.ts";
import type { RedisLink } from "./redis-link.ts";

/**
 * Copies between instances over Redis. One channel every instance subscribes to carries
 *  - `hello`: each instance says it is alive every `helloEveryMs`, so an origin knows whether
 *    any peer could hold a second copy (none: the ack falls back to one copy at once);
 *  - `copy`: with ACK_COPIES=2, a message or read mark with its conversation, which every peer
 *    stores (and queues for MongoDB, due later) and confirms on the origin's own channel; the
 *    first confirmation releases the ack;
 *  - `flushed`: the keys this instance's MongoDB writes just confirmed, so peers withdraw
 *    their waiting copies of them.
 * Classic pub/sub, like the control channel: it reaches every instance once.
 */

const conversationSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{24}$/),
  lessonId: z.number().int(),
  mentorId: z.number().int(),
  studentId: z.number().int(),
  createdAt: z.number(),
});

const sharedSchema = z.discriminatedUnion("t", [
  z.object({ t: z.literal("hello"), o: z.string() }),
  z.object({
    t: z.literal("copy"),
    o: z.string(),
    n: z.number().int(),
    c: conversationSchema,
    k: z.enum(["message", "viewed"]),
    f: z.string(),
  }),
  z.object({ t: z.literal("flushed"), o: z.string(), k: z.enum(COPIED_KINDS), keys: z.array(z.string()) }),
]);
const heldSchema = z.object({ t: z.literal("held"), o: z.string(), n: z.array(z.number().int()) });

export interface ReplicaOptions {
  link: RedisLink;
  prefix: string;
  instanceId: string;
  /** ACK_COPIES. */
  wanted: number;
  timeoutMs: number;
  keep: KeepReplica;
  keeper: CopyKeeper;
  logger: Logger;
  registry: Registry;
  now: () => number;
  helloEveryMs?: number;
}

export interface RedisCopies extends Copies {
  /** True when the channel was one of ours (the link hands every message to every receiver). */
  receive(channel: string, raw: string): boolean;
  close(): void;
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/** Instances heard from lately (any message counts), forgotten after `ttlMs` of silence. */
function createPeers(now: () => number, ttlMs: number) {
  const seen = new Map<string, number>();
  return {
    heard: (id: string) => void seen.set(id, now()),
    live(): number {
      const t = now();
      for (const [id, at] of seen) if (at < t - ttlMs) seen.delete(id);
      return seen.size;
    },
    clear: () => seen.clear(),
  };
}

/** Redis's own persistence settings, for the report; managed Redis often refuses CONFIG. */
async function redisPersistence(link: RedisLink): Promise<Record<string, string>> {
  try {
    const out: Record<string, string> = {};
    for (const name of ["appendonly", "appendfsync"]) {
      const r = (await link.command("CONFIG", ["GET", name])) as unknown;
      const flat = Array.isArray(r) ? r : Object.entries((r ?? {}) as Record<string, unknown>).flat();
      out[name] = String(flat[1] ?? "unknown");
    }
    return out;
  } catch {
    return { config: "not readable" };
  }
}

/** Confirmations of kept replicas, gathered per origin: every copy of one commit goes in one publish. */
function createConfirmations(send: (origin: string, ns: number[]) => void) {
  const toConfirm = new Map<string, number[]>();
  return (origin: string, n: number) => {
    const list = toConfirm.get(origin);
    if (list) return void list.push(n);
    toConfirm.set(origin, [n]);
    // The commit resolves every copy's promise in one turn, before this microtask runs.
    queueMicrotask(() => {
      const ns = toConfirm.get(origin) ?? [];
      toConfirm.delete(origin);
      send(origin, ns);
    });
  };
}

/** The asks for a second copy still open, by sequence: settled by a peer's `held`, a timeout or close. */
function createWaits(timeoutMs: number, onSingle: (reason: string) => void, onTwo: () => void) {
  const waiting = new Map<number, (copies: 1 | 2, reason?: string) => void>();
  let seq = 0;
  return {
    open(publish: (n: number) => void): Promise<1 | 2> {
      const n = ++seq;
      return new Promise<1 | 2>((resolve) => {
        const settle = (copies: 1 | 2, reason = "") => {
          clearTimeout(timeout);
          waiting.delete(n);
          if (copies === 2) onTwo();
          else onSingle(reason);
          resolve(copies);
        };
        const timeout = setTimeout(() => settle(1, `no peer confirmed within ${timeoutMs} ms`), timeoutMs);
        waiting.set(n, settle);
        publish(n);
      });
    },
    held: (n: number) => waiting.get(n)?.(2),
    closeAll: () => {
      for (const settle of [...waiting.values()]) settle(1, "shutting down");
    },
  };
}

function copiesMetrics(registry: Registry) {
  return {
    acks: registry.counter("chat_copies_acks_total", "Acks by the durable copies that existed"),
    kept: registry.counter("chat_copies_replicas_total", "Replicated frames stored for peers"),
    bad: registry.counter("chat_copies_malformed_total", "Copy-channel messages that failed validation"),
  };
}

export function createRedisCopies(opts: ReplicaOptions): RedisCopies {
  const { link, instanceId, logger, now } = opts;
  const helloEveryMs = opts.helloEveryMs ?? 1000;
  const shared = `${opts.prefix}copies`;
  const ownChannel = (id: string) => `${opts.prefix}copies:${id}`;
  const mine = ownChannel(instanceId);
  const peers = createPeers(now, helloEveryMs * 3 + 500);
  const { acks, kept, bad } = copiesMetrics(opts.registry);
  let keepFailures = 0;
  let lastFallback: { at: string; reason: string } | undefined;
  let persistence: Record<string, string> = {};

  const publish = (channel: string, msg: unknown) => {
    if (link.up) link.publish(channel, JSON.stringify(msg)).catch(() => undefined);
  };
  const hello = () => publish(shared, { t: "hello", o: instanceId });
  const refreshPersistence = () =>
    void redisPersistence(link).then((p) => {
      persistence = p;
    });
  const fallbackReason = (): string | undefined => {
    if (opts.wanted < 2) return undefined;
    if (!link.up) return "bus down";
    if (peers.live() === 0) return "no peer instance";
    return undefined;
  };
  const single = (reason: string) => {
    lastFallback = { at: new Date(now()).toISOString(), reason };
    acks.inc({ copies: "1" });
  };
  const waits = createWaits(opts.timeoutMs, single, () => acks.inc({ copies: "2" }));
  const confirm = createConfirmations((origin, n) =>
    publish(ownChannel(origin), { t: "held", o: instanceId, n }),
  );

  const keepReplica = (m: { o: string; n: number; c: Conversation; k: "message" | "viewed"; f: string }) =>
    opts.keep(m.c, m.k, m.f).then(
      (held) => {
        if (!held) return void bad.inc();
        kept.inc({ kind: m.k });
        confirm(m.o, m.n);
      },
      (err) => {
        // The first and every 100th: a broken disk must not turn a flood of replicas into one of logs.
        if (keepFailures++ % 100 === 0)
          logger.error("replicated frame could not be kept", {
            error: err,
            origin: m.o,
            failures: keepFailures,
          });
      },
    );

  const onShared = (raw: string) => {
    const parsed = sharedSchema.safeParse(safeJson(raw));
    if (!parsed.success) return void bad.inc();
    const m = parsed.data;
    if (m.o === instanceId) return;
    peers.heard(m.o);
    if (m.t === "flushed") opts.keeper.withdraw(m.k, m.keys);
    else if (m.t === "copy") void keepReplica(m);
  };

  const onHeld = (raw: string) => {
    const parsed = heldSchema.safeParse(safeJson(raw));
    if (!parsed.success) return void bad.inc();
    peers.heard(parsed.data.o);
    for (const n of parsed.data.n) waits.held(n);
  };

  link.subscribe(shared).catch(() => undefined);
  link.subscribe(mine).catch(() => undefined);
  // Whoever was heard before an outage must be heard again after it to count as a peer.
  link.onDown(() => peers.clear());
  link.onUp(() => {
    hello();
    refreshPersistence();
  });
  if (link.up) refreshPersistence();
  hello();
  const timer = setInterval(hello, helloEveryMs);

  return {
    receive(channel, raw) {
      if (channel === shared) onShared(raw);
      else if (channel === mine) onHeld(raw);
      else return false;
      return true;
    },

    secure(conversation, kind, frame) {
      if (opts.wanted < 2) return Promise.resolve(1);
      const reason = fallbackReason();
      if (reason) {
        single(reason);
        return Promise.resolve(1);
      }
      return waits.open((n) =>
        publish(shared, { t: "copy", o: instanceId, n, c: conversation, k: kind, f: frame }),
      );
    },

    announce(kind, keys) {
      if (keys.length > 0) publish(shared, { t: "flushed", o: instanceId, k: kind, keys });
    },

    status(): CopiesStatus {
      const reason = fallbackReason();
      const copies = opts.wanted >= 2 && !reason ? 2 : 1;
      return {
        ok: copies >= opts.wanted,
        wanted: opts.wanted,
        copies,
        ...(reason ? { fallback: reason } : {}),
        peers: peers.live(),
        acks_two_copies: acks.get({ copies: "2" }),
        acks_one_copy: acks.get({ copies: "1" }),
        ...(lastFallback ? { last_fallback: lastFallback } : {}),
        // What Redis itself would keep of a stream: reported, not relied on (docs/durability.md).
        redis_persistence: persistence,
      };
    },

    close() {
      clearInterval(timer);
      waits.closeAll();
    },
  };
}

/** One instance, or no Redis: nobody to copy to, nobody to tell. */
export function createLocalCopies(wanted: number): Copies {
  return {
    secure: async () => 1,
    announce: () => undefined,
    status: () => ({
      ok: wanted < 2,
      wanted,
      copies: 1,
      ...(wanted >= 2 ? { fallback: "no Redis: one instance" } : {}),
    }),
  };
}
