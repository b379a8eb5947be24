/**
 * A WebSocket client for tests: queues every frame it receives so a test can wait for the
 * next one of a type, and fails with what it did receive when the wait times out.
 */

export type Frame = { type: string; [k: string]: unknown };

export class TestSocket {
  readonly frames: Frame[] = [];
  private readonly taken = new Set<number>();
  /** Every frame before this index has been taken: scans start here. */
  private firstFree = 0;
  private waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (e) => {
      this.frames.push(JSON.parse(String(e.data)) as Frame);
      this.wake();
    };
    ws.onclose = (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    };
  }

  static open(
    url: string,
    init?: { headers?: Record<string, string>; protocols?: string[] },
  ): Promise<TestSocket> {
    const ws = init?.headers
      ? new WebSocket(url, { headers: init.headers, protocols: init.protocols } as unknown as string[])
      : new WebSocket(url, init?.protocols);
    const sock = new TestSocket(ws);
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(sock);
      ws.onerror = () =>
        reject(new Error(`WebSocket to ${url.replace(/token=[^&]+/, "token=…")} failed to open`));
    });
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The earliest frame matching `pred` not yet returned by `next`; other frames stay unread. */
  async next(pred: string | ((f: Frame) => boolean), timeoutMs = 3000): Promise<Frame> {
    const match = typeof pred === "string" ? (f: Frame) => f.type === pred : pred;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = this.firstFree; i < this.frames.length; i++) {
        if (this.taken.has(i)) continue;
        const f = this.frames[i]!;
        if (match(f)) {
          this.taken.add(i);
          while (this.taken.has(this.firstFree)) this.taken.delete(this.firstFree++);
          return f;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        throw new Error(
          `no matching frame within ${timeoutMs} ms (closed: ${JSON.stringify(this.closed)}); got: ${JSON.stringify(this.frames.slice(-8))}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** All frames of a type received so far (read or not). */
  all(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  /** Waits for the server to close this socket. */
  async closedWith(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("socket was not closed by the server");
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.closed;
  }

  close(): void {
    this.ws.close();
  }
}
