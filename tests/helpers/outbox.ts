import { expect } from "bun:test";
import type { MongoClient } from "mongodb";
import { ObjectId } from "mongodb";
import type { MongoHandle } from "./ferretdb.ts";
import { checkQueue, type QueueCheckResult } from "./queue-checker.ts";
import { type TestService, UNTHROTTLED } from "./service.ts";
import { waitUntil } from "./wait.ts";
import type { TestSocket } from "./ws-client.ts";

/** Shared pieces of the MongoDB outbox tests: env, readiness, waits, and reading MongoDB back. */

export const FAST_RATES = UNTHROTTLED;

/** Short timeouts and backoff so outages are noticed and recovered from within a test's budget. */
export function mongoEnv(mongo: MongoHandle, uri = mongo.uri, extra: Record<string, string> = {}) {
  return {
    ...FAST_RATES,
    MONGO_URI: uri,
    MONGO_DB: mongo.dbName,
    MONGO_CONNECT_TIMEOUT_MS: "500",
    MONGO_SOCKET_TIMEOUT_MS: "1500",
    MONGO_READ_TIMEOUT_MS: "500",
    MONGO_FLUSH_POLL_MS: "200",
    MONGO_RETRY_MAX_MS: "400",
    ...extra,
  };
}

export interface Ready {
  ready: boolean;
  checks: {
    outbox: { backlog: number; oldest_age_s: number };
    mongo: {
      ok: boolean;
      configured: boolean;
      flushed_messages?: number;
      flush_errors?: number;
      last_flush_at?: string | null;
    };
  };
}

export async function readyz(svc: Pick<TestService, "get">): Promise<{ status: number; body: Ready }> {
  const res = await svc.get("/readyz");
  return { status: res.status, body: (await res.json()) as Ready };
}

export const drained = (svc: Pick<TestService, "get">, timeoutMs = 20_000) =>
  waitUntil(
    async () => {
      const r = await readyz(svc);
      return r.body.checks.outbox.backlog === 0 && r.body.checks.mongo.ok ? r.body : undefined;
    },
    { message: "the outbox to drain into MongoDB", timeoutMs },
  );

/** Ids in MongoDB for a conversation, one entry per stored document (so duplicates show). */
export async function storedIds(client: MongoClient, db: string, conversationId: string): Promise<string[]> {
  const docs = await client
    .db(db)
    .collection("messages")
    .find({ conversation_id: new ObjectId(conversationId) }, { projection: { _id: 1 } })
    .toArray();
  return docs.map((d) => (d._id as ObjectId).toHexString());
}

/** Sends `n` messages with client ids `${prefix}${i}` and collects the acked ids. */
export async function sendMany(sock: TestSocket, n: number, prefix: string, timeoutMs = 15_000) {
  for (let i = 0; i < n; i++)
    sock.send({ type: "message", text: `${prefix} ${i}`, client_id: `${prefix}${i}` });
  const acked: string[] = [];
  for (let i = 0; i < n; i++) acked.push(String((await sock.next("ack", timeoutMs)).id));
  return acked;
}

/** Every message of a conversation through REST, paging backwards. */
export async function restHistory(svc: Pick<TestService, "get">, userId: number, conversationId: string) {
  const all: Array<{ id: string; viewed_by?: number }> = [];
  let before = "";
  for (;;) {
    const res = await svc.get(
      `/messages?conversation_id=${conversationId}&limit=200${before ? `&before=${before}` : ""}`,
      userId,
    );
    if (res.status !== 200) throw new Error(`GET /messages: ${res.status} ${await res.text()}`);
    const page = (await res.json()) as Array<{ id: string; viewed_by?: number }>;
    if (page.length === 0) return all;
    all.unshift(...page);
    before = page[0]!.id;
  }
}

/**
 * The Jepsen-style verdict every outbox test asserts: nothing acked is missing from MongoDB,
 * nothing is there twice, nothing is there that was never sent. Shows the three lists on failure.
 */
export function expectExactlyOnce(acked: string[], stored: string[]): QueueCheckResult {
  const result = checkQueue({ sent: acked, acked, stored });
  expect({ lost: result.lost, duplicated: result.duplicated, unexpected: result.unexpected }).toEqual({
    lost: [],
    duplicated: [],
    unexpected: [],
  });
  return result;
}
