/**
 * TCP fault-injection proxy for putting a real server behind a misbehaving network.
 *
 * Modes apply to bytes as they arrive, so switching mode affects in-flight traffic immediately:
 * - pass: forward both ways.
 * - blackhole: keep every connection open but drop all bytes (a hung server or a partition that
 *   does not send RSTs); clients only notice through their own timeouts.
 * - reset: abort existing connections with RST and abort new ones on accept (a crashed server or a
 *   firewall rejecting traffic); clients notice immediately.
 * - delay: forward every chunk after `delayMs`, preserving order.
 */
import type { Socket, TCPSocketListener } from "bun";

export type ProxyMode = "pass" | "blackhole" | "reset" | "delay";

export interface ProxyStats {
  /** Connections accepted since start, including ones reset on accept. */
  connections: number;
  /** Connections currently open on the client side. */
  active: number;
  /** Bytes written to the upstream server. */
  bytesToServer: number;
  /** Bytes written back to clients. */
  bytesToClient: number;
  /** Bytes discarded by blackhole mode, both directions. */
  bytesDropped: number;
  /** Times a socket accepted only part of a chunk; lets tests prove the backpressure path ran. */
  partialWrites: number;
}

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** Convenience for MongoDB clients: mongodb://host:port/ */
  readonly uri: string;
  readonly mode: ProxyMode;
  setMode(mode: ProxyMode, options?: { delayMs?: number }): void;
  stats(): ProxyStats;
  /** Stops listening and aborts every connection. */
  close(): void;
}

export interface ProxyOptions {
  target: { host: string; port: number };
  /** Loopback only by default: fault tests must never send traffic off this machine. */
  listenHost?: string;
}

/** Pending bytes above this pause the reading side, so a slow receiver cannot make us buffer unboundedly. */
const HIGH_WATER = 1 << 20;

/**
 * One direction of a connection. Owns the write queue for `dst`, because `Socket.write` is a
 * partial write: whatever it does not accept must be kept and retried on `drain`, in order.
 */
class Pipe {
  dst: Socket<Conn> | null = null;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private delayed: { due: number; chunk: Uint8Array }[] = [];
  private delayTimer: ReturnType<typeof setTimeout> | null = null;
  private endWhenFlushed = false;
  private lastDue = 0;

  constructor(
    private readonly src: () => Socket<Conn> | null,
    private readonly count: (n: number) => void,
    private readonly onPartial: () => void,
  ) {}

  push(chunk: Uint8Array, delayMs: number): void {
    // Bun may reuse the buffer handed to `data` once the callback returns; anything kept must be copied.
    const copy = new Uint8Array(chunk);
    if (delayMs > 0) {
      // Never schedule before an earlier chunk, even if delayMs was lowered meanwhile: TCP is ordered.
      const due = Math.max(Date.now() + delayMs, this.lastDue);
      this.lastDue = due;
      this.delayed.push({ due, chunk: copy });
      this.armDelay();
      return;
    }
    if (this.delayed.length > 0) {
      // Leaving delay mode must not let new bytes overtake delayed ones.
      this.delayed.push({ due: this.lastDue, chunk: copy });
      return;
    }
    this.enqueue(copy);
  }

  private armDelay(): void {
    if (this.delayTimer || this.delayed.length === 0) return;
    const wait = Math.max(0, this.delayed[0]!.due - Date.now());
    this.delayTimer = setTimeout(() => {
      this.delayTimer = null;
      const now = Date.now();
      while (this.delayed.length > 0 && this.delayed[0]!.due <= now)
        this.enqueue(this.delayed.shift()!.chunk);
      if (this.delayed.length > 0) this.armDelay();
      else if (this.endWhenFlushed) this.maybeEnd();
    }, wait);
  }

  private enqueue(chunk: Uint8Array): void {
    this.queue.push(chunk);
    this.queued += chunk.byteLength;
    this.flush();
  }

  /** Writes as much as the socket takes; called on enqueue, on `open` of dst and on `drain`. */
  flush(): void {
    const dst = this.dst;
    if (!dst) return;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const written = dst.write(head);
      if (written < 0) {
        // dst is closed; the close handler tears the connection down.
        this.queue = [];
        this.queued = 0;
        return;
      }
      if (written > 0) this.count(written);
      this.queued -= written;
      if (written < head.byteLength) {
        this.onPartial();
        this.queue[0] = head.subarray(written);
        break;
      }
      this.queue.shift();
    }
    const src = this.src();
    if (src) {
      if (this.queued > HIGH_WATER) src.pause();
      else src.resume();
    }
    if (this.endWhenFlushed) this.maybeEnd();
  }

  /** Graceful close of dst once everything already accepted from src has been delivered. */
  endAfterFlush(): void {
    this.endWhenFlushed = true;
    this.maybeEnd();
  }

  private maybeEnd(): void {
    if (this.queue.length === 0 && this.delayed.length === 0 && this.dst) this.dst.end();
  }

  discard(): void {
    this.queue = [];
    this.queued = 0;
    this.delayed = [];
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = null;
  }
}

interface Conn {
  client: Socket<Conn>;
  upstream: Socket<Conn> | null;
  toServer: Pipe;
  toClient: Pipe;
  closed: boolean;
}

export async function startProxy(options: ProxyOptions): Promise<TcpProxy> {
  const { target } = options;
  const host = options.listenHost ?? "127.0.0.1";
  let mode: ProxyMode = "pass";
  let delayMs = 0;
  const conns = new Set<Conn>();
  const stats: ProxyStats = {
    connections: 0,
    active: 0,
    bytesToServer: 0,
    bytesToClient: 0,
    bytesDropped: 0,
    partialWrites: 0,
  };
  const onPartial = (): void => {
    stats.partialWrites++;
  };

  const teardown = (conn: Conn, abort: boolean): void => {
    if (conn.closed) return;
    conn.closed = true;
    conns.delete(conn);
    stats.active--;
    conn.toServer.discard();
    conn.toClient.discard();
    if (abort) {
      conn.client.terminate();
      conn.upstream?.terminate();
    } else {
      conn.client.end();
      conn.upstream?.end();
    }
  };

  const onBytes = (conn: Conn, pipe: Pipe, data: Uint8Array): void => {
    if (conn.closed) return;
    switch (mode) {
      case "pass":
        pipe.push(data, 0);
        return;
      case "delay":
        pipe.push(data, delayMs);
        return;
      case "blackhole":
        stats.bytesDropped += data.byteLength;
        return;
      case "reset":
        teardown(conn, true);
        return;
    }
  };

  const connectUpstream = (conn: Conn): void => {
    Bun.connect<Conn>({
      hostname: target.host,
      port: target.port,
      data: conn,
      socket: {
        binaryType: "uint8array",
        open(up) {
          if (conn.closed) {
            up.terminate();
            return;
          }
          conn.upstream = up;
          conn.toServer.dst = up;
          conn.toServer.flush();
        },
        data(_up, data) {
          onBytes(conn, conn.toClient, data);
        },
        drain() {
          conn.toServer.flush();
        },
        close() {
          if (conn.closed) return;
          // Server hung up: deliver what it already sent, then close the client side too.
          conn.upstream = null;
          conn.toServer.dst = null;
          conn.toClient.endAfterFlush();
        },
        connectError() {
          teardown(conn, true);
        },
        error() {
          teardown(conn, true);
        },
      },
    }).catch(() => {
      // connectError already tore the connection down; this only silences the rejection.
    });
  };

  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: host,
    port: 0,
    socket: {
      binaryType: "uint8array",
      open(client) {
        stats.connections++;
        if (mode === "reset") {
          client.terminate();
          return;
        }
        stats.active++;
        const conn: Conn = {
          client,
          upstream: null,
          closed: false,
          toServer: new Pipe(
            () => conn.client,
            (n) => {
              stats.bytesToServer += n;
            },
            onPartial,
          ),
          toClient: new Pipe(
            () => conn.upstream,
            (n) => {
              stats.bytesToClient += n;
            },
            onPartial,
          ),
        };
        conn.toClient.dst = client;
        client.data = conn;
        conns.add(conn);
        connectUpstream(conn);
      },
      data(client, data) {
        const conn = client.data;
        if (conn) onBytes(conn, conn.toServer, data);
      },
      drain(client) {
        client.data?.toClient.flush();
      },
      close(client) {
        const conn = client.data;
        if (!conn || conn.closed) return;
        if (!conn.upstream) {
          // Still connecting: nothing to deliver to, so there is nothing worth flushing.
          teardown(conn, false);
          return;
        }
        conn.toClient.dst = null;
        conn.toServer.endAfterFlush();
        conns.delete(conn);
        conn.closed = true;
        stats.active--;
      },
      error(client) {
        const conn = client.data;
        if (conn) teardown(conn, true);
      },
    },
  });

  const proxy: TcpProxy = {
    host,
    port: listener.port,
    uri: `mongodb://${host}:${listener.port}/`,
    get mode() {
      return mode;
    },
    setMode(next, opts) {
      mode = next;
      delayMs = next === "delay" ? (opts?.delayMs ?? 100) : 0;
      if (next === "reset") for (const conn of [...conns]) teardown(conn, true);
    },
    stats: () => ({ ...stats }),
    close() {
      listener.stop(true);
      for (const conn of [...conns]) teardown(conn, true);
    },
  };
  return proxy;
}
