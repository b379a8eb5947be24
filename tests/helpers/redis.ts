import { RedisClient } from "bun";
import { freePort } from "./net.ts";
import type { TestService } from "./service.ts";
import type { Frame, TestSocket } from "./ws-client.ts";

/**
 * Redis for tests: the shared server at 127.0.0.1:6379 with a key prefix of the test's own
 * (removed afterwards; never FLUSHALL), or a private redis-server on a free port that a test
 * may kill and restart.
 */

export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function testPrefix(): string {
  return `test:${crypto.randomUUID().slice(0, 8)}:`;
}

/** Fails with the reason when the shared Redis is not there: a missing server is an error. */
export async function requireRedis(url = SHARED_REDIS_URL): Promise<void> {
  const c = new RedisClient(url, { autoReconnect: false, connectionTimeout: 2000 });
  try {
    await c.connect();
    await c.send("PING", []);
  } catch (err) {
    throw new Error(`Redis is not reachable at ${url} (run scripts/setup.sh): ${String(err)}`);
  } finally {
    c.close();
  }
}

export async function removePrefix(prefix: string, url = SHARED_REDIS_URL): Promise<void> {
  const c = new RedisClient(url, { autoReconnect: false, connectionTimeout: 2000 });
  try {
    await c.connect();
    let cursor = "0";
    do {
      const [next, keys] = (await c.send("SCAN", [cursor, "MATCH", `${prefix}*`, "COUNT", "500"])) as [
        string,
        string[],
      ];
      cursor = next;
      if (keys.length > 0) await c.send("DEL", keys);
    } while (cursor !== "0");
  } finally {
    c.close();
  }
}

export interface OwnRedis {
  url: string;
  port: number;
  start(): Promise<void>;
  kill(): Promise<void>;
}

/** A private, non-persistent redis-server; `kill` is SIGKILL, as a crash would be. */
export async function ownRedis(): Promise<OwnRedis> {
  const port = freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: Bun.Subprocess | undefined;
  const self: OwnRedis = {
    url,
    port,
    async start() {
      proc = Bun.spawn(
        ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        { stdout: "ignore", stderr: "pipe" },
      );
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await requireRedis(url);
          return;
        } catch (err) {
          if (Date.now() > deadline || proc.exitCode !== null) {
            throw new Error(`redis-server on port ${port} did not start: ${String(err)}`);
          }
          await Bun.sleep(50);
        }
      }
    },
    async kill() {
      proc?.kill(9);
      await proc?.exited;
      proc = undefined;
    },
  };
  await self.start();
  return self;
}

/** Sockets that have had their `ready` frame, all closed together when a file ends. */
export function socketPool() {
  const open: TestSocket[] = [];
  return {
    async connect(svc: TestService, userId: number, query: Record<string, string | number>) {
      const sock = await svc.connect(userId, query);
      open.push(sock);
      await sock.next("ready");
      return sock;
    },
    closeAll() {
      for (const s of open.splice(0)) s.close();
    },
  };
}

export const isMessage = (id: unknown) => (f: Frame) => f.type === "message" && f.id === id;

export const presenceOf = (userId: number, online: boolean) => (f: Frame) =>
  f.type === "presence" && f.user_id === userId && f.online === online;

/** GET /presence of `ofUser` as `asUser`; anything but 200 fails the caller. */
export async function presenceVia(svc: TestService, asUser: number, ofUser: number) {
  const res = await svc.get(`/presence?user_id=${ofUser}`, asUser);
  if (res.status !== 200) throw new Error(`/presence?user_id=${ofUser} as ${asUser}: ${res.status}`);
  return (await res.json()) as { online: boolean; last_seen?: string };
}

export type BusCheck = {
  ok: boolean;
  state: string;
  redis?: { mode: string; version?: string; pubsub?: string; unsupported?: string; notes: string[] };
};

/** /readyz → checks.bus. */
export async function busState(svc: TestService): Promise<BusCheck> {
  return ((await (await svc.get("/readyz")).json()) as { checks: { bus: BusCheck } }).checks.bus;
}
