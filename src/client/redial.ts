import { type BackoffOptions, backoffDelay } from "./backoff.ts";

/**
 * When a lost connection is dialled again: after a backoff that grows with each attempt, or at
 * once when the browser reports the network back (a waiting client need not sit out its delay).
 */

export interface RedialIo {
  backoff: BackoffOptions;
  dial(): void;
  /** True while a redial is pending, the only time `online` should hurry it. */
  waiting(): boolean;
}

export class Redial {
  /** Attempts since the last `ready`. */
  attempt = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private readonly onOnline = () => {
    if (this.io.waiting()) this.soon(0);
  };

  constructor(private readonly io: RedialIo) {}

  listenOnline(): void {
    if (typeof addEventListener === "function" && typeof window !== "undefined") {
      addEventListener("online", this.onOnline);
    }
  }

  /** The next attempt's delay; the attempt is counted. */
  nextDelay(): number {
    const delayMs = backoffDelay(this.attempt, this.io.backoff);
    this.attempt++;
    return delayMs;
  }

  soon(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.io.dial(), delayMs);
  }

  /** For good: no pending dial, no `online` listener. */
  stop(): void {
    clearTimeout(this.timer);
    if (typeof removeEventListener === "function") removeEventListener("online", this.onOnline);
  }
}
