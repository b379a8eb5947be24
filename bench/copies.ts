/**
 * The price of copies (docs/durability.md): two instances on one Redis and one MongoDB
 * (FerretDB), the sender on A and the recipient on B, with ACK_COPIES=1 and ACK_COPIES=2 taking
 * turns in one run (the box is shared, so only figures of one run compare). Reported per mode:
 * ack latency (send → ack at the sender), delivery latency (send → message at the recipient),
 * the CPU time both instances spent per message, from the first send until both outboxes are
 * empty and every copy is withdrawn or written, and how many copies reached MongoDB.
 *
 *   npx bun bench/copies.ts [--pairs 10] [--messages 200] [--window 4] [--rounds 2] [--base-root DIR]
 *
 * `--base-root` adds the same load on another checkout (e.g. main before copies) as a baseline.
 * Env: BENCH_REDIS_URL (default redis://127.0.0.1:6379).
 */
import { parseArgs } from "node:util";
import { startMongo } from "../tests/helpers/ferretdb.ts";
import { removePrefix } from "../tests/helpers/redis.ts";
import { type ChildService, spawnService, tempDir, UNTHROTTLED } from "../tests/helpers/service.ts";
import { metricValue } from "./lib/metrics-text.ts";
import { connectPairs, oneMentorDirectory, percentile, studentsOf } from "./lib/one-mentor.ts";
import { cpuMicros } from "./lib/proc.ts";

const { values } = parseArgs({
  options: {
    pairs: { type: "string", default: "10" },
    messages: { type: "string", default: "200" },
    window: { type: "string", default: "4" },
    rounds: { type: "string", default: "2" },
    "base-root": { type: "string" },
  },
});
const PAIRS = Number(values.pairs);
const MESSAGES = Number(values.messages);
const WINDOW = Number(values.window);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const DELAY_MS = 2000;
const students = studentsOf(PAIRS);

async function metric(svc: ChildService, series: string): Promise<number> {
  const value = metricValue(await (await svc.get("/metrics")).text(), series);
  return Number.isNaN(value) ? 0 : value;
}

async function backlog(svc: ChildService): Promise<number> {
  const r = (await (await svc.get("/readyz")).json()) as { checks: { outbox: { backlog: number } } };
  return r.checks.outbox.backlog;
}

/** Every pair sends MESSAGES with at most WINDOW unacked; returns ack and delivery latencies. */
async function load(a: ChildService, b: ChildService) {
  const pairs = await connectPairs(a, b, students);
  await Bun.sleep(300);
  const acks: number[] = [];
  const deliveries: number[] = [];
  const tag = crypto.randomUUID().slice(0, 8);
  await Promise.all(
    pairs.map(async ({ mentor, student }, p) => {
      const sentAt = new Map<string, number>();
      let received = 0;
      let acked = 0;
      let sent = 0;
      const done = new Promise<void>((resolve) => {
        student.ws.addEventListener("message", (e) => {
          const f = JSON.parse(String(e.data)) as { type: string; text?: string };
          if (f.type !== "message" || !f.text?.startsWith("t=")) return;
          deliveries.push(performance.now() - Number(f.text.slice(2)));
          if (++received === MESSAGES && acked === MESSAGES) resolve();
        });
        mentor.ws.addEventListener("message", (e) => {
          const f = JSON.parse(String(e.data)) as { type: string; client_id?: string };
          if (f.type !== "ack") return;
          acks.push(performance.now() - (sentAt.get(f.client_id ?? "") ?? Number.NaN));
          acked++;
          if (received === MESSAGES && acked === MESSAGES) resolve();
          pump();
        });
      });
      const pump = () => {
        while (sent < MESSAGES && sent - acked < WINDOW) {
          const clientId = `${tag}-${p}-${sent++}`;
          sentAt.set(clientId, performance.now());
          mentor.send({ type: "message", text: `t=${performance.now()}`, client_id: clientId });
        }
      };
      pump();
      await Promise.race([
        done,
        Bun.sleep(120_000).then(() => {
          throw new Error(`pair ${p}: ${received} delivered, ${acked} acked of ${MESSAGES} within 120 s`);
        }),
      ]);
    }),
  );
  for (const { mentor, student } of pairs) {
    mentor.close();
    student.close();
  }
  return { acks: acks.sort((x, y) => x - y), deliveries: deliveries.sort((x, y) => x - y) };
}

interface Row {
  scenario: string;
  ackP50: number;
  ackP99: number;
  deliveryP50: number;
  cpuUsPerMessage: number;
  copiesWritten: number;
  copiesWithdrawn: number;
}

async function scenario(name: string, env: Record<string, string>, root?: string): Promise<Row> {
  const mongo = await startMongo();
  const prefix = `bench:${crypto.randomUUID().slice(0, 8)}:`;
  const dirs = [tempDir("bench-copies-a-"), tempDir("bench-copies-b-")];
  const children: ChildService[] = [];
  try {
    for (const [i, d] of dirs.entries()) {
      children.push(
        await spawnService({
          dir: d.path,
          ...(root ? { cwd: root } : {}),
          env: {
            ...UNTHROTTLED,
            DIRECTORY_FILE: oneMentorDirectory(d.path, students),
            MAX_CONNECTIONS_PER_USER: "10000",
            MONGO_URI: mongo.uri,
            MONGO_DB: mongo.dbName,
            REDIS_URL,
            REDIS_PREFIX: prefix,
            INSTANCE_ID: i === 0 ? "A" : "B",
            COPY_FLUSH_DELAY_MS: String(DELAY_MS),
            ...env,
          },
        }),
      );
    }
    const [a, b] = children as [ChildService, ChildService];
    await Bun.sleep(1500); // the instances hear each other
    const cpu0 = cpuMicros(a.proc.pid) + cpuMicros(b.proc.pid);
    const { acks, deliveries } = await load(a, b);
    // Until every copy is withdrawn or written: a copy left waiting would be MongoDB's next write.
    await Bun.sleep(DELAY_MS + 500);
    for (let i = 0; i < 200 && (await backlog(a)) + (await backlog(b)) > 0; i++) await Bun.sleep(100);
    const cpu = cpuMicros(a.proc.pid) + cpuMicros(b.proc.pid) - cpu0;
    return {
      scenario: name,
      ackP50: percentile(acks, 50),
      ackP99: percentile(acks, 99),
      deliveryP50: percentile(deliveries, 50),
      cpuUsPerMessage: cpu / (PAIRS * MESSAGES),
      copiesWritten: await metric(b, 'chat_outbox_flushed_total{kind="relayed_message"}'),
      copiesWithdrawn: await metric(b, 'chat_copies_withdrawn_total{kind="message"}'),
    };
  } finally {
    for (const c of children) if (c.proc.exitCode === null) await c.stop();
    for (const d of dirs) d.remove();
    await mongo.destroy();
    await removePrefix(prefix, REDIS_URL).catch(() => undefined);
  }
}

const rows: Row[] = [];
for (let r = 0; r < Number(values.rounds); r++) {
  if (values["base-root"]) rows.push(await scenario("base (no copies)", {}, values["base-root"]));
  rows.push(await scenario("ACK_COPIES=1", { ACK_COPIES: "1" }));
  rows.push(await scenario("ACK_COPIES=2", { ACK_COPIES: "2" }));
}

console.log(
  `\n${PAIRS} conversations x ${MESSAGES} messages, window ${WINDOW}, sender on A, recipient on B, MongoDB up\n`,
);
console.log(
  "| scenario | ack p50 ms | ack p99 ms | delivery p50 ms | CPU µs/msg (A+B) | copies written | copies withdrawn |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.scenario} | ${r.ackP50.toFixed(2)} | ${r.ackP99.toFixed(2)} | ${r.deliveryP50.toFixed(2)} | ${Math.round(r.cpuUsPerMessage)} | ${r.copiesWritten} | ${r.copiesWithdrawn} |`,
  );
}
process.exit(0);
