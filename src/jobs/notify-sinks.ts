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

/** What the stream sink needs of a Redis link (redis-shape.ts: one server or a cluster alike). */
export interface StreamRedis {
  command(name: string, args: string[]): Promise<unknown>;
}

export interface StreamSinkOptions {
  /**
   * The link the stream lives on, asked at each send: the fan-out's exists only once the bus is
   * up, after the worker was made. Undefined means not yet, and the send fails to be retried.
   */
  redis: () => StreamRedis | undefined | Promise<StreamRedis | undefined>;
  stream: string;
  timeoutMs: number;
  /** Closes a link the sink owns; a borrowed one (the fan-out's) is closed by its owner. */
  close?: () => Promise<void>;
}

/**
 * XADD on the stream the platform's service reads with its consumer group, through a shaped
 * link, so on a Redis Cluster the command goes to the node owning the stream's slot (a plain
 * client on another node would get MOVED forever). The link owns reconnecting; a send while it
 * is down fails at once and the outbox retries. The stream is not trimmed here: the service
 * acknowledges entries but does not delete them, and trimming is the owner's decision (MAXLEN
 * on its side or a Redis policy), not one a producer should make for it.
 */
export function createStreamSink(opts: StreamSinkOptions): NotifySink {
  let closed = false;
  return {
    name: "stream",
    async send(notification) {
      if (closed) throw new SinkError("stream sink closed");
      const redis = await within(Promise.resolve(opts.redis()), opts.timeoutMs, "redis connect");
      if (!redis) throw new SinkError("the stream's Redis link is not open yet");
      const id = await within(
        redis.command("XADD", [opts.stream, "*", "data", JSON.stringify(notification)]),
        opts.timeoutMs,
        "XADD",
      );
      if (typeof id !== "string") throw new SinkError(`XADD answered ${String(id)}`);
    },
    async close() {
      closed = true;
      await opts.close?.();
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

/**
 * A link of the stream sink's own, for NOTIFY_REDIS_URL naming another Redis than the bus's:
 * opened at the first send (a service that never notifies never dials it) with `open`, which
 * asks the server its shape as the fan-out does. An open that failed is tried again next send.
 */
export function ownStreamLink(open: () => Promise<StreamRedis & { close(): Promise<void> }>) {
  let link: ReturnType<typeof open> | undefined;
  return {
    redis() {
      link ??= open().catch((err) => {
        link = undefined;
        throw err;
      });
      return link;
    },
    async close() {
      const opened = link;
      link = undefined;
      await (await opened?.catch(() => undefined))?.close();
    },
  };
}
