/**
 * Group commit: every write that arrives within one turn of the event loop runs in a single
 * SQLite transaction, so one fsync covers them all. Callers hear back only after the commit,
 * which is what makes "acked" mean "durable".
 */

type Job<T> = { run: () => T; resolve: (v: T) => void; reject: (e: unknown) => void };

export interface GroupCommitter {
  submit<T>(run: () => T): Promise<T>;
  /** Runs whatever is queued now (shutdown uses it). */
  flushNow(): void;
  readonly pending: number;
}

export function createGroupCommitter(opts: {
  transaction: <T>(fn: () => T) => T;
  onBatch?: (size: number) => void;
  /**
   * A job error that is the storage failing (disk full, I/O error), not the job: the batch is
   * rolled back as a whole rather than committed around it.
   */
  isStorageFailure?: (err: unknown) => boolean;
  /** What every job of a batch whose commit failed is rejected with (the error by default). */
  onCommitError?: (err: unknown, jobs: number) => unknown;
}): GroupCommitter {
  let queue: Job<unknown>[] = [];
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    const batch = queue;
    queue = [];
    if (batch.length === 0) return;
    const results: unknown[] = new Array(batch.length);
    const failures: Array<unknown> = new Array(batch.length);
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
      const reason = opts.onCommitError ? opts.onCommitError(err, batch.length) : err;
      for (const job of batch) job.reject(reason);
      return;
    }
    opts.onBatch?.(batch.length);
    for (let i = 0; i < batch.length; i++) {
      if (failures[i] !== undefined) batch[i]!.reject(failures[i]);
      else batch[i]!.resolve(results[i]);
    }
  };

  return {
    submit<T>(run: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ run, resolve, reject } as Job<unknown>);
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },
    flushNow: flush,
    get pending() {
      return queue.length;
    },
  };
}
