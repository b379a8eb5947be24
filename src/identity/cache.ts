/**
 * A TTL cache that also merges concurrent misses into one call ("single flight"), so a burst of
 * connects for one lesson costs the backend one request. Failures are not cached: the next
 * caller tries again.
 */
export class SingleFlightCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  private readonly inflight = new Map<string, Promise<V>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * `ownFailure` marks errors that belong to the caller who started the flight rather than to
   * the key (say, the backend refusing that caller's token): a caller who joined such a flight
   * loads again with its own `load` instead of inheriting someone else's refusal.
   */
  async get(key: string, load: () => Promise<V>, ownFailure?: (err: unknown) => boolean): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) return hit.value;
    const pending = this.inflight.get(key);
    if (pending) {
      if (!ownFailure) return pending;
      return pending.catch((err) => {
        if (!ownFailure(err)) throw err;
        return load().then((value) => {
          this.store(key, value);
          return value;
        });
      });
    }
    const p = load().then(
      (value) => {
        this.inflight.delete(key);
        this.store(key, value);
        return value;
      },
      (err) => {
        this.inflight.delete(key);
        throw err;
      },
    );
    this.inflight.set(key, p);
    return p;
  }

  /** Forgets a cached answer, so the next `get` asks the backend again. */
  delete(key: string): void {
    this.entries.delete(key);
  }

  private store(key: string, value: V): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: drop the oldest entry.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { value, expires: this.now() + this.ttlMs });
  }
}
