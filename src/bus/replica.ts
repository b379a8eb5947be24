import { z } from "zod";
import type { Copies, CopiesStatus, CopyKeeper } from "../domain/copies.ts";
import type { KeepReplica } from "../domain/relay.ts";
import type { Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { COPIED_KINDS } from "../model/outbox.ts";
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

export function createRedisCopies(opts: ReplicaOptions): RedisCopies {
  const { link, instanceId, logger, now } = opts;
  const helloEveryMs = opts.helloEveryMs ?? 1000;
  const peerTtlMs = helloEveryMs * 3 + 500;
  const shared = `${opts.prefix}copies`;
  const ownChannel = (id: string) => `${opts.prefix}copies:${id}`;
  const mine = ownChannel(instanceId);
  const peers = new Map<string, number>();
  /** Asks for a second copy still open, by sequence: settled by a peer's `held`, a timeout or close. */
  const waiting = new Map<number, (copies: 1 | 2) => void>();
  /** Confirmations to send, by origin, gathered for one publish per commit. */
  const toConfirm = new Map<string, number[]>();
  let seq = 0;
  let lastFallback: { at: string; reason: string } | undefined;
  let redisPersistence: Record<string, string> = {};
  const acks = opts.registry.counter("chat_copies_acks_total", "Acks by the durable copies that existed");
  const kept = opts.registry.counter("chat_copies_replicas_total", "Replicated frames stored for peers");
  const bad = opts.registry.counter(
    "chat_copies_malformed_total",
    "Copy-channel messages that failed validation",
  );

  const livePeers = () => {
    const t = now();
    for (const [id, seen] of peers) if (seen < t - peerTtlMs) peers.delete(id);
    return peers.size;
  };
  const fallbackReason = (): string | undefined => {
    if (opts.wanted < 2) return undefined;
    if (!link.up) return "bus down";
    if (livePeers() === 0) return "no peer instance";
    return undefined;
  };
  const single = (reason: string): 1 => {
    lastFallback = { at: new Date(now()).toISOString(), reason };
    acks.inc({ copies: "1" });
    return 1;
  };

  const publish = (channel: string, msg: unknown) => {
    if (link.up) link.publish(channel, JSON.stringify(msg)).catch(() => undefined);
  };
  const hello = () => publish(shared, { t: "hello", o: instanceId });
  const readPersistence = async () => {
    try {
      const out: Record<string, string> = {};
      for (const name of ["appendonly", "appendfsync"]) {
        const r = (await link.command("CONFIG", ["GET", name])) as unknown;
        const flat = Array.isArray(r) ? r : Object.entries((r ?? {}) as Record<string, unknown>).flat();
        out[name] = String(flat[1] ?? "unknown");
      }
      redisPersistence = out;
    } catch {
      // Managed Redis often refuses CONFIG; the report then says nothing about it.
      redisPersistence = { config: "not readable" };
    }
  };

  const confirmLater = (origin: string, n: number) => {
    const list = toConfirm.get(origin);
    if (list) return void list.push(n);
    toConfirm.set(origin, [n]);
    // Every copy of one commit resolves in the same turn: one publish answers them all.
    queueMicrotask(() => {
      const ns = toConfirm.get(origin) ?? [];
      toConfirm.delete(origin);
      publish(ownChannel(origin), { t: "held", o: instanceId, n: ns });
    });
  };

  const onShared = (raw: string) => {
    const parsed = sharedSchema.safeParse(safeJson(raw));
    if (!parsed.success) return void bad.inc();
    const m = parsed.data;
    if (m.o === instanceId) return;
    peers.set(m.o, now());
    if (m.t === "flushed") return opts.keeper.withdraw(m.k, m.keys);
    if (m.t !== "copy") return;
    opts.keep(m.c, m.k, m.f).then(
      (held) => {
        if (!held) return void bad.inc();
        kept.inc({ kind: m.k });
        confirmLater(m.o, m.n);
      },
      (err) => logger.error("replicated frame could not be kept", { error: err, origin: m.o }),
    );
  };

  const onHeld = (raw: string) => {
    const parsed = heldSchema.safeParse(safeJson(raw));
    if (!parsed.success) return void bad.inc();
    peers.set(parsed.data.o, now());
    for (const n of parsed.data.n) waiting.get(n)?.(2);
  };

  link.subscribe(shared).catch(() => undefined);
  link.subscribe(mine).catch(() => undefined);
  // Whoever was heard before an outage must be heard again after it to count as a peer.
  link.onDown(() => peers.clear());
  link.onUp(() => {
    hello();
    void readPersistence();
  });
  if (link.up) void readPersistence();
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
      if (reason) return Promise.resolve(single(reason));
      const n = ++seq;
      return new Promise<1 | 2>((resolve) => {
        const settle = (copies: 1 | 2) => {
          clearTimeout(timeout);
          waiting.delete(n);
          if (copies === 2) acks.inc({ copies: "2" });
          resolve(copies);
        };
        const timeout = setTimeout(
          () => settle(single(`no peer confirmed within ${opts.timeoutMs} ms`)),
          opts.timeoutMs,
        );
        waiting.set(n, settle);
        publish(shared, { t: "copy", o: instanceId, n, c: conversation, k: kind, f: frame });
      });
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
        peers: livePeers(),
        acks_two_copies: acks.get({ copies: "2" }),
        acks_one_copy: acks.get({ copies: "1" }),
        ...(lastFallback ? { last_fallback: lastFallback } : {}),
        // What Redis itself would keep of a stream: reported, not relied on (docs/durability.md).
        redis_persistence: redisPersistence,
      };
    },

    close() {
      clearInterval(timer);
      for (const settle of [...waiting.values()]) settle(single("shutting down"));
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
