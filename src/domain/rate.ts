/**
 * Token buckets: `ratePerS` tokens a second up to `burst`. Pure apart from the clock passed in,
 * so tests drive time by hand.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(cost = 1): boolean {
    if (!this.peek(cost)) return false;
    this.tokens -= cost;
    return true;
  }

  /** Whether `cost` tokens are there, without taking them. */
  peek(cost = 1): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerS);
    this.last = t;
    return this.tokens >= cost;
  }

  /** Seconds until `cost` tokens are available again. */
  waitS(cost = 1): number {
    return Math.max(0, Math.ceil((cost - this.tokens) / this.ratePerS));
  }
}

/** One bucket per key (user, IP), forgotten when idle long enough to have refilled. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, { bucket: TokenBucket; lastUse: number }>();

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  take(key: string, cost = 1): { ok: boolean; retryAfterS: number } {
    const t = this.now();
    let entry = this.buckets.get(key);
    if (!entry) {
      if (this.buckets.size > 50_000) this.sweep(t);
      entry = { bucket: new TokenBucket(this.ratePerS, this.burst, this.now), lastUse: t };
      this.buckets.set(key, entry);
    }
    entry.lastUse = t;
    const ok = entry.bucket.take(cost);
    return { ok, retryAfterS: ok ? 0 : Math.max(1, entry.bucket.waitS(cost)) };
  }

  /** Seconds to wait before `key` may take `cost` again; 0 when it may now. Takes nothing. */
  waitS(key: string, cost = 1): number {
    const entry = this.buckets.get(key);
    if (!entry || entry.bucket.peek(cost)) return 0;
    return Math.max(1, entry.bucket.waitS(cost));
  }

  private sweep(t: number): void {
    const fullAfterMs = (this.burst / this.ratePerS) * 1000;
    for (const [k, e] of this.buckets) if (t - e.lastUse > fullAfterMs) this.buckets.delete(k);
  }
}
