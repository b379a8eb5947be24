import { join } from "node:path";
import { parseArgs } from "node:util";
import { conversationIdFor, createObjectIdGenerator } from "../src/ids.ts";
import { MONGO_KINDS } from "../src/jobs/mongo-flush.ts";
import { openStore } from "../src/store/sqlite/index.ts";
import { startMongo } from "../tests/helpers/ferretdb.ts";
import { spawnService, tempDir, UNTHROTTLED } from "../tests/helpers/service.ts";
import { mintToken } from "../tests/helpers/tokens.ts";

/**
 * Outbox drain after a MongoDB outage: N messages are written into SQLite (through the store API,
 * as an outage would leave them) while MongoDB is down; then the service starts, MongoDB comes
 * back, and we time the drain, while one client keeps chatting and we record its ack latency.
 *   npx bun bench/outbox.ts [--messages 100000] [--batch 500] [--rate 100]
 */
const { values } = parseArgs({
  options: {
    messages: { type: "string" },
    batch: { type: "string", default: "500" },
    rate: { type: "string", default: "100" },
    // The suite's 30-second mode: a tenth of the backlog.
    quick: { type: "boolean", default: false },
  },
});
const total = Number(values.messages ?? (values.quick ? "10000" : "100000"));
const rate = Number(values.rate);
const command = `npx bun bench/outbox.ts --messages ${total} --batch ${values.batch} --rate ${rate}`;

const mongo = await startMongo();
await mongo.stop();
const dir = tempDir("chat-bench-outbox-");
const parties = { lessonId: 5, mentorId: 10, studentId: 15 };

let t = performance.now();
const store = openStore({ path: join(dir.path, "chat.db"), outboxKinds: MONGO_KINDS });
const conv = store.openConversation(conversationIdFor(5, 10, 15), parties, Date.now());
const newId = createObjectIdGenerator();
for (let done = 0; done < total; ) {
  const n = Math.min(1000, total - done);
  store.transaction(() => {
    for (let i = 0; i < n; i++) {
      store.insertMessage({
        id: newId(),
        conversationId: conv.id,
        senderId: i % 2 ? 10 : 15,
        text: `backlog message ${done + i} with some text to make it look like a chat line`,
        createdAt: Date.now(),
      });
    }
  });
  done += n;
}
store.close();
const writeMs = performance.now() - t;

const svc = await spawnService({
  dir: dir.path,
  env: {
    LOG_LEVEL: "info",
    MONGO_URI: mongo.uri,
    MONGO_DB: mongo.dbName,
    MONGO_FLUSH_BATCH: String(values.batch),
    MONGO_RETRY_MAX_MS: "500",
    ...UNTHROTTLED,
  },
});
const ws = new WebSocket(`${svc.wsUrl}?lesson_id=5&student_id=15&token=${await mintToken(10)}`);
await new Promise((r, j) => {
  ws.onopen = r;
  ws.onerror = j;
});
const sentAt = new Map<string, number>();
const latencies: number[] = [];
ws.onmessage = (e) => {
  const f = JSON.parse(String(e.data)) as { type: string; client_id?: string };
  if (f.type === "ack" && f.client_id) {
    const s = sentAt.get(f.client_id);
    if (s !== undefined) latencies.push(performance.now() - s);
  }
};
let seq = 0;
const ticker = setInterval(() => {
  const id = `live${seq++}`;
  sentAt.set(id, performance.now());
  ws.send(JSON.stringify({ type: "message", text: "live during drain", client_id: id }));
}, 1000 / rate);

t = performance.now();
await mongo.start();
const upMs = performance.now() - t;
t = performance.now();
let backlog = Number.POSITIVE_INFINITY;
while (backlog > 0) {
  await Bun.sleep(100);
  const r = (await (await fetch(`${svc.url}/readyz`)).json()) as { checks: { outbox: { backlog: number } } };
  backlog = r.checks.outbox.backlog;
}
const drainMs = performance.now() - t;
clearInterval(ticker);
await Bun.sleep(200);
ws.close();

const client = await mongo.client();
const stored = await client.db(mongo.dbName).collection("messages").countDocuments();
await svc.stop();
await mongo.destroy();
dir.remove();

const sorted = [...latencies].sort((a, b) => a - b);
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const drained = total + seq + 0;
console.log(`$ ${command}`);
console.log(
  `backlog written to SQLite (MongoDB down): ${total} messages in ${(writeMs / 1000).toFixed(2)} s`,
);
console.log(`FerretDB restart: ${(upMs / 1000).toFixed(2)} s`);
console.log(
  `drain: ${drained} outbox rows (backlog + ${seq} live) in ${(drainMs / 1000).toFixed(2)} s = ${Math.round(drained / (drainMs / 1000))} messages/s into MongoDB (FerretDB 1.24, SQLite backend)`,
);
console.log(`MongoDB holds ${stored} messages (expected ${total + seq})`);
console.log(
  `live acks during the drain (${latencies.length} at ${rate}/s): p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms, max ${sorted.at(-1)?.toFixed(2)} ms`,
);
// Last line, for bench/run.ts.
console.log(
  JSON.stringify({
    backlog: total,
    drained,
    drain_s: Number((drainMs / 1000).toFixed(2)),
    flush_per_s: Math.round(drained / (drainMs / 1000)),
    stored,
    live_ack_p50_ms: Number(pct(50).toFixed(2)),
    live_ack_p99_ms: Number(pct(99).toFixed(2)),
  }),
);
// A drain that lost or doubled anything is a failed run, not a figure.
if (stored !== total + seq) process.exit(1);
