/**
 * Token buckets: `ratePerS` tokens a second up to `burst`. Pure apart from the clock passed in,
 * so tests drive time by hand.
 */

const monotonic = () => performance.now();

/** A bucket's level, kept by whoever holds it (see SharedRate). */
export interface Level {
  tokens: number;
  /** The clock's reading when `tokens` was last brought up to date. */
  tokensAt: number;
}

/**
 * One rate for many levels held elsewhere: every socket has a frame budget, and a bucket object
 * of its own was ~64 B of each idle connection's heap; the socket keeps the two numbers instead.
 */
export class SharedRate {
  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    readonly now: () => number = monotonic,
  ) {}

  /** A full level, as of now. */
  full(): Level {
    return { tokens: this.burst, tokensAt: this.now() };
  }

  take(level: Level, cost = 1): boolean {
    if (!this.peek(level, cost)) return false;
    level.tokens -= cost;
    return true;
  }

  /** Whether `cost` tokens are there, without taking them. */
  peek(level: Level, cost = 1): boolean {
    const t = this.now();
    level.tokens = Math.min(this.burst, level.tokens + ((t - level.tokensAt) / 1000) * this.ratePerS);
    level.tokensAt = t;
    return level.tokens >= cost;
  }

  /** Seconds until `cost` tokens are there again, as of the level's last update. */
  waitS(level: Level, cost = 1): number {
    return Math.max(0, Math.ceil((cost - level.tokens) / this.ratePerS));
  }

  /** How long an untouched level takes to fill up from empty. */
  get fullAfterMs(): number {
    return (this.burst / this.ratePerS) * 1000;
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
  private readonly levels = new Map<K, Level>();
  private readonly rate: SharedRate;

  constructor(ratePerS: number, burst: number, now: () => number = monotonic) {
    this.rate = new SharedRate(ratePerS, burst, now);
  }

  take(key: K, cost = 1): Taken {
    let level = this.levels.get(key);
    if (!level) {
      if (this.levels.size > 50_000) this.sweep();
      level = this.rate.full();
      this.levels.set(key, level);
    }
    if (this.rate.take(level, cost)) return TAKEN;
    return { ok: false, retryAfterS: Math.max(1, this.rate.waitS(level, cost)) };
  }

  /** Seconds to wait before `key` may take `cost` again; 0 when it may now. Takes nothing. */
  waitS(key: K, cost = 1): number {
    const level = this.levels.get(key);
    if (!level || this.rate.peek(level, cost)) return 0;
    return Math.max(1, this.rate.waitS(level, cost));
  }

  /** Buckets kept (for tests). */
  get size(): number {
    return this.levels.size;
  }

  private sweep(): void {
    const t = this.rate.now();
    const fullAfterMs = this.rate.fullAfterMs;
    for (const [k, level] of this.levels) if (t - level.tokensAt > fullAfterMs) this.levels.delete(k);
  }
}
