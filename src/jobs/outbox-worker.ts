import type { Logger } from "../log.ts";
import type { OutboxEntry, OutboxKind } from "../model/outbox.ts";
import { backoffMs } from "./backoff.ts";

/**
 * Runs the outbox: each handler reads the entries of its kinds in seq order, sends them, and
 * confirms only what its sink confirmed; it stops at the first failure, so order holds (a read
 * mark never before its messages, a message never before its conversation), and the worker
 * retries after a backoff with jitter. Commits wake an idle handler; a backoff wait is left alone.
 * A replayed entry (answer lost, crash before the local confirm) must be harmless to the sink.
 */

/** What the worker needs of the store. */
export interface OutboxPort {
  /** Only entries due at `now`; a handler never sees one before its time. */
  outboxBatch<K extends OutboxKind>(kinds: readonly K[], limit: number, now: number): OutboxEntry<K>[];
  outboxConfirm(entries: readonly { seq: number }[]): void;
  outboxStats(): { backlog: number };
}

export interface OutboxHandler<K extends OutboxKind = OutboxKind> {
  /** Names the sink in logs ("MongoDB"). */
  name: string;
  kinds: readonly K[];
  /** Before each pass: what the sink needs first (indexes); throwing counts as a failure. */
  prepare?(): Promise<void>;
  /** Sends `entries` in order, calling `confirm` for each prefix the sink confirmed; throws at the first failure. */
  handle(entries: OutboxEntry<K>[], confirm: (done: OutboxEntry<K>[]) => void): Promise<void>;
  /** Told after every pass that did not fail (clears a last error). */
  succeeded?(): void;
  /** Told once per failed pass (metrics). */
  failed?(error: string): void;
  /** Told when the sink confirmed entries (metrics). */
  confirmed?(kind: K, n: number): void;
  /** Last, when the worker stops (e.g. close the connection, aborting a write in flight). */
  close?(): Promise<void>;
  /**
   * For entries due later (notifications): when the earliest one it left waiting falls due.
   * An idle wait ends then instead of after the poll interval.
   */
  wakeAt?(): number | null;
  /**
   * False when a commit never makes an entry due at once (a notification is due a delay later):
   * then a commit only moves the idle wait's end earlier, to `wakeAt()`, and does not cost a read.
   */
  commitWakes?: boolean;
  /** This handler's backoff ceiling, when not the worker's. */
  retryMaxMs?: number;
}

/** A handler with its kinds erased, so handlers of different kinds share one list. */
export type RegisteredHandler = OutboxHandler & { readonly registered: true };

/** Checks a handler against its kinds' payloads, then erases them for the worker's list. */
export function register<K extends OutboxKind>(handler: OutboxHandler<K>): RegisteredHandler {
  return { ...(handler as unknown as OutboxHandler), registered: true };
}

export interface WorkerOptions {
  outbox: OutboxPort;
  logger: Logger;
  batchSize: number;
  /** Idle wait when the outbox is empty; notify() cuts it short. */
  pollMs: number;
  /** Ceiling of the exponential backoff while a sink fails. */
  retryMaxMs: number;
  retryBaseMs?: number;
  now?: () => number;
  random?: () => number;
  /**
   * Resolves once everything committed so far is on disk. Entries are read only after it, so
   * no sink ever holds what a crash could still take back from SQLite (the sender, never
   * acked, would resend it under a new id).
   */
  durable?: () => Promise<void>;
}

export type OutboxWorker = ReturnType<typeof createOutboxWorker>;

export function createOutboxWorker(opts: WorkerOptions, handlers: readonly RegisteredHandler[]) {
  const runs = handlers.map((h) => createHandlerRun(opts, h));
  return {
    start(): void {
      for (const r of runs) r.start();
    },
    /** New entries were committed. */
    notify(): void {
      for (const r of runs) r.notify();
    },
    /**
     * Stops after one last attempt to drain, within `budgetMs`. What is left stays in the
     * outbox for the next start: nothing is lost either way.
     */
    async stop(budgetMs: number): Promise<void> {
      await Promise.all(runs.map((r) => r.stop(budgetMs)));
    },
    /** For tests and the benchmark: send until the outbox is empty or a write fails. */
    async drain(): Promise<number> {
      let total = 0;
      for (const r of runs) total += await r.drain();
      return total;
    },
  };
}

const MIN_IDLE_MS = 10;

function createHandlerRun(opts: WorkerOptions, handler: OutboxHandler) {
  const { outbox, logger } = opts;
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const baseMs = opts.retryBaseMs ?? 100;
  let stopping = false;
  let deadline = Number.POSITIVE_INFINITY;
  let failures = 0;
  let wake: (() => void) | null = null;
  /** Moves the end of the current idle wait to an earlier time. */
  let rearm: ((at: number) => void) | null = null;
  let loop: Promise<void> | null = null;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      let until = now() + ms;
      let timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (wake === done) {
          wake = null;
          rearm = null;
        }
        resolve();
      }
      wake = done;
      rearm = (at) => {
        if (at >= until) return;
        until = at;
        clearTimeout(timer);
        timer = setTimeout(done, Math.max(0, at - now()));
      };
    });

  /** The idle wait: the poll interval, or less when the handler knows an entry falls due sooner. */
  const idleMs = () => {
    const at = handler.wakeAt?.() ?? null;
    // A time already past (it fell due during the pass) gets a short pause, never a busy loop.
    return at === null ? opts.pollMs : Math.min(opts.pollMs, Math.max(MIN_IDLE_MS, at - now()));
  };

  const confirm = (done: OutboxEntry[]) => {
    if (done.length === 0) return;
    outbox.outboxConfirm(done);
    const counts = new Map<OutboxKind, number>();
    for (const e of done) counts.set(e.kind, (counts.get(e.kind) ?? 0) + 1);
    for (const [kind, n] of counts) handler.confirmed?.(kind, n);
  };

  /** One batch. Returns how many entries the sink confirmed; throws on the first failure. */
  async function once(): Promise<number> {
    await handler.prepare?.();
    await opts.durable?.();
    const entries = outbox.outboxBatch(handler.kinds, opts.batchSize, now());
    let done = 0;
    await handler.handle(entries, (part) => {
      confirm(part);
      done += part.length;
    });
    return done;
  }

  const onFailure = (err: unknown) => {
    failures++;
    const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    handler.failed?.(error);
    // The first failure and then every 20th: an outage must not flood the log.
    if (failures === 1 || failures % 20 === 0) {
      logger.warn(`${handler.name} flush failed; backlog stays in SQLite`, {
        failures,
        error,
        backlog: outbox.outboxStats().backlog,
      });
    }
  };

  async function run(): Promise<void> {
    while (!(stopping && now() >= deadline)) {
      let n = 0;
      try {
        n = await once();
        if (failures > 0) {
          logger.info(`${handler.name} flush resumed`, {
            after_failures: failures,
            backlog: outbox.outboxStats().backlog,
          });
        }
        failures = 0;
        handler.succeeded?.();
      } catch (err) {
        onFailure(err);
        if (stopping) return;
        await sleep(backoffMs(failures, baseMs, handler.retryMaxMs ?? opts.retryMaxMs, random));
        continue;
      }
      if (n === 0) {
        if (stopping) return;
        await sleep(idleMs());
      }
    }
  }

  return {
    start(): void {
      loop ??= run().catch((err) => logger.error("outbox worker stopped unexpectedly", { error: err }));
    },
    notify(): void {
      if (failures > 0) return;
      if (handler.commitWakes === false) {
        const at = handler.wakeAt?.() ?? null;
        if (at !== null) rearm?.(at);
        return;
      }
      wake?.();
    },
    async stop(budgetMs: number): Promise<void> {
      stopping = true;
      deadline = now() + budgetMs;
      wake?.();
      if (loop) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([loop, new Promise((r) => (timer = setTimeout(r, budgetMs)))]);
        clearTimeout(timer);
      }
      // Closing may abort a write still in flight; its entries stay unconfirmed and are replayed.
      await handler.close?.().catch(() => {});
      await loop;
    },
    async drain(): Promise<number> {
      let total = 0;
      for (;;) {
        const n = await once();
        total += n;
        if (n === 0) return total;
      }
    },
  };
}
