/**
 * Pings an open socket every period. A half-open connection never fires `close`: one silent for
 * two periods (no frame at all, pongs included) is given up so the client can redial.
 */
export class Heartbeat {
  private timer?: ReturnType<typeof setInterval>;
  private lastFrameAt = 0;

  /** `everyMs` of 0 or less turns it off. */
  constructor(private readonly everyMs: number) {}

  /** Any frame from the server counts as life. */
  heard(): void {
    this.lastFrameAt = Date.now();
  }

  start(ping: () => void, onSilent: () => void): void {
    const every = this.everyMs;
    if (every <= 0) return;
    this.timer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > 2 * every) {
        onSilent();
        return;
      }
      ping();
    }, every);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
