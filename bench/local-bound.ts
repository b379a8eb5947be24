import { statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startMongo } from "../tests/helpers/ferretdb.ts";
import { startTestService, tempDir, UNTHROTTLED } from "../tests/helpers/service.ts";
import { waitUntil } from "../tests/helpers/wait.ts";

/**
 * The local store's size under LOCAL_MAX_MB once MongoDB (FerretDB here) confirmed everything:
 * `npx bun bench/local-bound.ts --messages 100000 --max-mb 8`. Sends over real sockets to ten
 * conversations, waits for the outbox to drain and for retention to bring the file under the
 * limit, and prints the sizes.
 */

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "100000" },
    "max-mb": { type: "string", default: "8" },
    text: { type: "string", default: "80" },
  },
});
const total = Number(values.messages);
const maxMb = Number(values["max-mb"]);
const text = "m".repeat(Number(values.text));

const mongo = await startMongo();
const dir = tempDir("bench-bound-");
const svc = await startTestService({
  dir: dir.path,
  env: {
    ...UNTHROTTLED,
    MONGO_URI: mongo.uri,
    MONGO_DB: mongo.dbName,
    MONGO_READ_TIMEOUT_MS: "500",
    LOCAL_MAX_MB: String(maxMb),
    LOCAL_SWEEP_INTERVAL_S: "2",
  },
});
const file = join(dir.path, "chat.db");
const size = () => {
  const wal = (() => {
    try {
      return statSync(`${file}-wal`).size;
    } catch {
      return 0;
    }
  })();
  return { db: statSync(file).size, wal };
};
try {
  const students = [15, 16];
  const sockets = await Promise.all(students.map((s) => svc.connect(10, { lesson_id: 5, student_id: s })));
  for (const s of sockets) await s.next("ready");
  const started = performance.now();
  const per = Math.ceil(total / sockets.length);
  await Promise.all(
    sockets.map(async (sock, k) => {
      for (let done = 0; done < per; done += 1000) {
        const n = Math.min(1000, per - done);
        for (let i = 0; i < n; i++) sock.send({ type: "message", text, client_id: `k${k}-${done + i}` });
        for (let i = 0; i < n; i++) await sock.next("ack", 60_000);
      }
    }),
  );
  const sentS = (performance.now() - started) / 1000;
  console.log(
    `sent ${per * sockets.length} messages in ${sentS.toFixed(1)} s; before retention: ${JSON.stringify(size())}`,
  );
  await waitUntil(
    async () => {
      const r = (await (await svc.get("/readyz")).json()) as { checks: { outbox: { backlog: number } } };
      return r.checks.outbox.backlog === 0 || undefined;
    },
    { message: "the outbox to drain", timeoutMs: 600_000 },
  );
  const flushedS = (performance.now() - started) / 1000;
  await waitUntil(() => size().db <= maxMb * 1024 * 1024 || undefined, {
    message: `the file to get under ${maxMb} MiB`,
    timeoutMs: 120_000,
  });
  await Bun.sleep(3000); // one more sweep: the figure is the settled one
  const metrics = await (await svc.get("/metrics")).text();
  console.log(
    `flushed at ${flushedS.toFixed(1)} s; settled at ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
      `${JSON.stringify(size())} bytes; ${/chat_local_evicted_total \d+/.exec(metrics)?.[0]}; ` +
      `${/chat_local_db_bytes \d+/.exec(metrics)?.[0]}`,
  );
  for (const s of sockets) s.close();
} finally {
  await svc.stop();
  await mongo.destroy();
  dir.remove();
}
