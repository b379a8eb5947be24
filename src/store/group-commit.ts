/**
 * Group commit: the writes that arrive while the previous batch is being made durable run in
 * one SQLite transaction, and one sync of the WAL covers them all. Callers hear back only once
 * the sync that covers their write has returned, which is what makes "acked" mean "durable".
 *
 * Pipelined: the commit writes the WAL without waiting for the disk (synchronous=NORMAL), and
 * `sync` (fdatasync on the thread pool) runs off the event loop, so frames keep being parsed
 * while the disk works. One sync is in flight at a time; what arrives meanwhile waits and is
 * committed as the next batch the moment it returns, so batches grow with load instead of
 * queues. Jobs settle in commit order, so whatever a caller does after `await` (publish) keeps
 * that order too. Without `sync` a commit is durable by itself (synchronous=FULL, or a mode
 * that does not sync at all) and jobs settle as soon as it returns; with FULL such commits are
 * spaced by `minSyncGapMs` like syncs, since each ends in one.
 */

type Job<T> = { run: () => T; resolve: (v: T) => void; reject: (e: unknown) => void };

/** A committed batch: each job's result or own failure, settled once its sync returns. */
interface Committed {
  jobs: Job<unknown>[];
  results: unknown[];
  failures: unknown[];
}

export interface GroupCommitter {
  submit<T>(run: () => T): Promise<T>;
  /** Resolves once everything committed or queued before the call is durable. */
  durable(): Promise<void>;
  /** Commits what is queued and waits until every batch is durable (shutdown). */
  drain(): Promise<void>;
  readonly pending: number;
}

export interface GroupCommitOptions {
  transaction: <T>(fn: () => T) => T;
  /** Makes everything committed so far durable, off the event loop. */
  sync?: () => Promise<void>;
  /**
   * The least time between the starts of two syncs (without `sync`: of two commits, each of
   * which syncs). Each costs kernel CPU whatever it covers; what arrives in the gap waits and
   * is committed with the next batch. A job after a quiet spell commits at once.
   */
  minSyncGapMs?: number;
  /**
   * The same sync, blocking. Batches of at most `inlineUpTo` jobs use it: on a quiet loop one
   * fdatasync (~0.25 ms here) stalls nothing, and it saves the hop to a thread and back, which
   * costs more than the sync when the thread shares a busy core.
   */
  syncNow?: () => void;
  inlineUpTo?: number;
  /** Called with each batch's size once it is durable. */
  onBatch?: (size: number) => void;
  /**
   * Called with the seconds each commit held the event loop (its jobs, the COMMIT, and with the
   * sync on the loop the sync): nothing else runs meanwhile, so frames wait behind it.
   */
  onCommitted?: (seconds: number) => void;
  /**
   * When it returns a promise, commits wait for it (the checkpointer is behind and the WAL
   * must not grow further); undefined lets them through.
   */
  gate?: () => Promise<void> | undefined;
  /**
   * A job error that is the storage failing (disk full, I/O error), not the job: the batch is
   * rolled back as a whole rather than committed around it.
   */
  isStorageFailure?: (err: unknown) => boolean;
  /** What every job of a batch whose commit or sync failed is rejected with (the error by default). */
  onCommitError?: (err: unknown, jobs: number) => unknown;
}

export function createGroupCommitter(opts: GroupCommitOptions): GroupCommitter {
  let queue: Job<unknown>[] = [];
  let scheduled = false;
  let syncing = false;
  let gated = false;
  let draining = false;
  /** A sync is due but held back by `minSyncGapMs`: commits wait as if one were in flight. */
  let spacing = false;
  let lastSyncAt = Number.NEGATIVE_INFINITY;
  const minGap = opts.minSyncGapMs ?? 0;
  /** Committed, not yet covered by a sync that has started. */
  let unsynced: Committed[] = [];
  const idleWaiters: Array<() => void> = [];

  const fail = (batch: Job<unknown>[], err: unknown) => {
    const reason = opts.onCommitError ? opts.onCommitError(err, batch.length) : err;
    for (const job of batch) job.reject(reason);
  };

  const settle = (c: Committed) => {
    opts.onBatch?.(c.jobs.length);
    for (let i = 0; i < c.jobs.length; i++) {
      if (c.failures[i] !== undefined) c.jobs[i]!.reject(c.failures[i]);
      else c.jobs[i]!.resolve(c.results[i]);
    }
  };

  /** Runs the queued jobs in one transaction; undefined when the commit itself failed. */
  const commit = (batch: Job<unknown>[]): Committed | undefined => {
    const results: unknown[] = new Array(batch.length);
    const failures: unknown[] = new Array(batch.length);
    const started = performance.now();
    try {
      opts.transaction(() => {
        for (let i = 0; i < batch.length; i++) {
          // One job's own failure (say, a bad reference) must not undo its neighbours:
          // a savepoint per job would cost more than it saves, so jobs validate before writing.
          try {
            results[i] = batch[i]!.run();
          } catch (err) {
            if (opts.isStorageFailure?.(err)) throw err;
            failures[i] = err ?? new Error("write failed");
          }
        }
      });
    } catch (err) {
      // The commit itself failed (disk full, I/O error): nothing in the batch is durable.
      fail(batch, err);
      return undefined;
    }
    opts.onCommitted?.((performance.now() - started) / 1000);
    return { jobs: batch, results, failures };
  };

  /** A pending gap holds writes back, except at shutdown. */
  const held = () => spacing && !draining;

  const wakeIdle = () => {
    if (syncing || held() || queue.length > 0 || unsynced.length > 0) return;
    for (const w of idleWaiters.splice(0)) w();
  };

  const jobsIn = (list: Committed[]) => {
    let n = 0;
    for (const c of list) n += c.jobs.length;
    return n;
  };

  /** True while the gap since the last sync is not over; a timer flushes when it is. */
  const heldForGap = (): boolean => {
    const wait = lastSyncAt + minGap - performance.now();
    if (wait <= 0 || draining) return false;
    spacing = true;
    setTimeout(() => {
      spacing = false;
      flush();
    }, wait);
    return true;
  };

  const startSync = () => {
    if (syncing || held() || unsynced.length === 0) return;
    if (heldForGap()) return;
    lastSyncAt = performance.now();
    const covered = unsynced;
    unsynced = [];
    if (opts.syncNow && jobsIn(covered) <= (opts.inlineUpTo ?? 0)) {
      try {
        opts.syncNow();
      } catch (err) {
        for (const c of covered) fail(c.jobs, err);
        return;
      }
      for (const c of covered) settle(c);
      return;
    }
    syncing = true;
    opts.sync!().then(
      () => {
        syncing = false;
        for (const c of covered) settle(c);
        flush();
      },
      (err) => {
        syncing = false;
        // Committed but maybe not on disk: refused, so the sender resends (a duplicate, then).
        for (const c of covered) fail(c.jobs, err);
        flush();
      },
    );
  };

  function flush(): void {
    scheduled = false;
    if (syncing || held() || (gated && !draining)) return;
    const gate = draining ? undefined : opts.gate?.();
    if (gate) {
      gated = true;
      gate.then(
        () => {
          gated = false;
          flush();
        },
        () => {
          gated = false;
          flush();
        },
      );
      return;
    }
    if (queue.length > 0 && !opts.sync) {
      // The commit is the sync (FULL on the loop): spaced like syncs, for the same reason.
      if (heldForGap()) return;
      lastSyncAt = performance.now();
    }
    const batch = queue;
    queue = [];
    if (batch.length > 0) {
      const committed = commit(batch);
      if (committed && !opts.sync) settle(committed);
      else if (committed) unsynced.push(committed);
    }
    startSync();
    wakeIdle();
  }

  const schedule = () => {
    if (scheduled || syncing || spacing || (gated && !draining)) return;
    scheduled = true;
    setImmediate(flush);
  };

  const whenIdle = () =>
    new Promise<void>((resolve) => {
      idleWaiters.push(resolve);
      wakeIdle();
    });

  const submit = <T>(run: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push({ run, resolve, reject } as Job<unknown>);
      schedule();
    });

  return {
    submit,
    durable(): Promise<void> {
      if (!syncing && !spacing && queue.length === 0 && unsynced.length === 0) return Promise.resolve();
      return submit(() => undefined);
    },
    async drain(): Promise<void> {
      // A gate (the checkpointer behind) is not waited for: shutdown commits what it holds.
      draining = true;
      flush();
      await whenIdle();
    },
    get pending() {
      return queue.length;
    },
  };
}
