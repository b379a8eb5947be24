import { RedisClient } from "bun";
import type { PlatformNotification } from "../model/notification.ts";

/**
 * The two ways into the platform's notification service: an entry on its Redis stream (one field,
 * `data`, holding the notification as JSON) and `POST /publish` with the notification as the body.
 * A send resolves once the sink confirmed (XADD answered with an entry id; HTTP 2xx) and throws
 * otherwise, so the caller keeps the notification and tries again later.
 */

export interface NotifySink {
  /** Names the sink in metrics, logs and the per-sink progress kept between retries. */
  readonly name: "stream" | "http";
  send(notification: PlatformNotification): Promise<void>;
  close(): Promise<void>;
}

class SinkError extends Error {
  override name = "SinkError";
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SinkError(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export interface StreamSinkOptions {
  url: string;
  stream: string;
  timeoutMs: number;
}

/**
 * XADD on the stream the platform's service reads with its consumer group. The stream is not
 * trimmed here: the service acknowledges entries but does not delete them, and trimming is the
 * owner's decision (MAXLEN on its side or a Redis policy), not one a producer should make for it.
 */
export function createStreamSink(opts: StreamSinkOptions): NotifySink {
  let client: RedisClient | null = null;
  let closed = false;

  // A fresh connection after any failure: Bun's client may keep believing a dead socket is open,
  // and a retry loop that reuses it would never notice Redis came back.
  const connected = async () => {
    if (client) return client;
    const c = new RedisClient(opts.url, {
      autoReconnect: false,
      enableOfflineQueue: false,
      connectionTimeout: opts.timeoutMs,
    });
    try {
      await within(c.connect(), opts.timeoutMs, "redis connect");
    } catch (err) {
      c.close();
      throw err;
    }
    client = c;
    return c;
  };

  return {
    name: "stream",
    async send(notification) {
      if (closed) throw new SinkError("stream sink closed");
      const c = await connected();
      try {
        const id = await within(
          c.send("XADD", [opts.stream, "*", "data", JSON.stringify(notification)]),
          opts.timeoutMs,
          "XADD",
        );
        if (typeof id !== "string") throw new SinkError(`XADD answered ${String(id)}`);
      } catch (err) {
        if (client === c) client = null;
        c.close();
        throw err;
      }
    },
    async close() {
      closed = true;
      client?.close();
      client = null;
    },
  };
}

export interface HttpSinkOptions {
  url: string;
  token?: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

export function createHttpSink(opts: HttpSinkOptions): NotifySink {
  const doFetch = opts.fetch ?? fetch;
  const inFlight = new Set<AbortController>();
  return {
    name: "http",
    async send(notification) {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      const abort = new AbortController();
      inFlight.add(abort);
      const timer = setTimeout(() => abort.abort(), opts.timeoutMs);
      try {
        const res = await doFetch(opts.url, {
          method: "POST",
          headers,
          body: JSON.stringify(notification),
          signal: abort.signal,
          redirect: "error",
        });
        // Read the body either way so the connection goes back to the pool.
        const body = await res.text();
        if (!res.ok) throw new SinkError(`POST answered ${res.status}: ${body.slice(0, 200)}`);
      } catch (err) {
        if (abort.signal.aborted) throw new SinkError(`POST took longer than ${opts.timeoutMs} ms`);
        throw err;
      } finally {
        clearTimeout(timer);
        inFlight.delete(abort);
      }
    },
    async close() {
      for (const a of inFlight) a.abort();
    },
  };
}
