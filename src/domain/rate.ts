/**
 * Token buckets: `ratePerS` tokens a second up to `burst`. Pure apart from the clock passed in,
 * so tests drive time by hand.
 */

// One clock for every bucket: a bound function per bucket was a closure of its own per socket.
const monotonic = () => performance.now();

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly now: () => number = monotonic,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** `t`: the clock's reading, when the caller has just taken one. */
  take(cost = 1, t = this.now()): boolean {
    if (!this.peek(cost, t)) return false;
    this.tokens -= cost;
    return true;
  }

  /** Whether `cost` tokens are there, without taking them. */
  peek(cost = 1, t = this.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerS);
    this.last = t;
    return this.tokens >= cost;
  }

  /** When the bucket was last taken from or looked at, by its clock. */
  get lastUse(): number {
    return this.last;
  }

  /** Seconds until `cost` tokens are available again. */
  waitS(cost = 1): number {
    return Math.max(0, Math.ceil((cost - this.tokens) / this.ratePerS));
  }
}

export interface Taken {
  ok: boolean;
  retryAfterS: number;
}

// Every message takes from its user's bucket: the common answer is not made anew each time.
const TAKEN: Taken = Object.freeze({ ok: true, retryAfterS: 0 });

/** One bucket per key (user, IP), forgotten when idle long enough to have refilled. */
export class KeyedBuckets<K extends string | number = string> {
  private readonly buckets = new Map<K, TokenBucket>();

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly now: () => number = monotonic,
  ) {}

  take(key: K, cost = 1): Taken {
    const t = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size > 50_000) this.sweep(t);
      bucket = new TokenBucket(this.ratePerS, this.burst, this.now);
      this.buckets.set(key, bucket);
    }
    if (bucket.take(cost, t)) return TAKEN;
    return { ok: false, retryAfterS: Math.max(1, bucket.waitS(cost)) };
  }

  /** Seconds to wait before `key` may take `cost` again; 0 when it may now. Takes nothing. */
  waitS(key: K, cost = 1): number {
    const bucket = this.buckets.get(key);
    if (!bucket || bucket.peek(cost)) return 0;
    return Math.max(1, bucket.waitS(cost));
  }

  /** Buckets kept (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(t: number): void {
    const fullAfterMs = (this.burst / this.ratePerS) * 1000;
    for (const [k, b] of this.buckets) if (t - b.lastUse > fullAfterMs) this.buckets.delete(k);
  }
}
