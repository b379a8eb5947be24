/**
 * Cross-instance delivery: how fast and how late a message sent on instance A reaches its
 * recipient on instance B through Redis, beside the same load on one instance (local bus, and
 * Redis configured with both sides on A). Each instance is a child process with its own
 * SQLite file; the load generator is this process, so send and receive times share one clock.
 *
 *   bun bench/cross-instance.ts [--pairs 40] [--messages 150] [--window 8] [--cluster] [--skip-single]
 *
 * --cluster adds the same A → B run on a three-master Redis Cluster started for the bench
 * (A given node 0, B node 1; conversation channels on sharded pub/sub). --skip-single leaves
 * out the local-bus and single-Redis runs.
 *
 * Env: BENCH_REDIS_URL (default redis://127.0.0.1:6379), SQLITE_SYNCHRONOUS (default FULL).
 */
import { parseArgs } from "node:util";
import { removePrefix } from "../tests/helpers/redis.ts";
import { startCluster, type TestCluster } from "../tests/helpers/redis-cluster.ts";
import { type ChildService, spawnService, tempDir, UNTHROTTLED } from "../tests/helpers/service.ts";
import { connectPairs, oneMentorDirectory, percentile, studentsOf } from "./lib/one-mentor.ts";

const { values } = parseArgs({
  options: {
    pairs: { type: "string", default: "40" },
    messages: { type: "string", default: "150" },
    window: { type: "string", default: "8" },
    cluster: { type: "boolean", default: false },
    "skip-single": { type: "boolean", default: false },
  },
});
const PAIRS = Number(values.pairs);
const MESSAGES = Number(values.messages);
const WINDOW = Number(values.window);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const students = studentsOf(PAIRS);

const baseEnv = (dir: string) => ({
  DIRECTORY_FILE: oneMentorDirectory(dir, students),
  LOG_LEVEL: "info", // spawnService reads the port from the "listening" line
  // Every pair shares one mentor, so the per-user limits (burst too) must be out of the way.
  ...UNTHROTTLED,
  MAX_CONNECTIONS_PER_USER: "10000",
  // Thousands of sockets from one address and few users: the upgrade budgets are off.
  UPGRADES_PER_MIN_PER_USER: "0",
  UPGRADES_PER_MIN_PER_ADDRESS: "0",
  SQLITE_SYNCHRONOUS: process.env.SQLITE_SYNCHRONOUS ?? "FULL",
});

interface Result {
  scenario: string;
  delivered: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  max: number;
}

/** Each pair: the mentor socket sends MESSAGES with at most WINDOW unacked; the student receives. */
async function run(scenario: string, senderSide: ChildService, receiverSide: ChildService): Promise<Result> {
  const pairs = await connectPairs(senderSide, receiverSide, students);
  await Bun.sleep(300);
  const latencies: number[] = [];
  // client_ids are idempotency keys: a rerun on the same instance must not repeat them.
  const runTag = crypto.randomUUID().slice(0, 8);
  const started = performance.now();
  await Promise.all(
    pairs.map(async ({ mentor, student }, p) => {
      let received = 0;
      const done = new Promise<void>((resolve) => {
        student.ws.addEventListener("message", (e) => {
          const f = JSON.parse(String(e.data)) as { type: string; text?: string };
          if (f.type !== "message" || !f.text?.startsWith("t=")) return;
          latencies.push(performance.now() - Number(f.text.slice(2)));
          if (++received === MESSAGES) resolve();
        });
      });
      // An error frame (rate limit, refusal) means the run is misconfigured: stop at once, not
      // after the timeout, and say which frame.
      let refuse: (err: Error) => void = () => undefined;
      const refused = new Promise<never>((_, reject) => {
        refuse = reject;
      });
      let acked = 0;
      let sent = 0;
      const pump = () => {
        while (sent < MESSAGES && sent - acked < WINDOW) {
          mentor.send({
            type: "message",
            text: `t=${performance.now()}`,
            client_id: `${runTag}-${p}-${sent++}`,
          });
        }
      };
      mentor.ws.addEventListener("message", (e) => {
        const f = JSON.parse(String(e.data)) as { type: string };
        if (f.type === "error") refuse(new Error(`${scenario}: pair ${p} sender got ${JSON.stringify(f)}`));
        if (f.type === "ack") {
          acked++;
          pump();
        }
      });
      pump();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${scenario}: pair ${p} got ${received}/${MESSAGES} within 120 s`)),
          120_000,
        );
      });
      try {
        await Promise.race([done, refused, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const { mentor, student } of pairs) {
    mentor.close();
    student.close();
  }
  latencies.sort((x, y) => x - y);
  return {
    scenario,
    delivered: latencies.length,
    seconds,
    rate: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? Number.NaN,
  };
}

const prefix = `bench:${crypto.randomUUID().slice(0, 8)}:`;
const dirs = [tempDir("bench-a-"), tempDir("bench-b-"), tempDir("bench-l-")];
const children: ChildService[] = [];
const results: Result[] = [];
let cluster: TestCluster | undefined;
const redisEnv = (dir: string, id: string, url: string) => ({
  ...baseEnv(dir),
  REDIS_URL: url,
  REDIS_PREFIX: prefix,
  INSTANCE_ID: id,
});
try {
  if (!values["skip-single"]) {
    const local = await spawnService({ dir: dirs[2]!.path, env: baseEnv(dirs[2]!.path) });
    children.push(local);
    results.push(await run("one instance, local bus", local, local));
    await local.stop();

    const a = await spawnService({ dir: dirs[0]!.path, env: redisEnv(dirs[0]!.path, "A", REDIS_URL) });
    const b = await spawnService({ dir: dirs[1]!.path, env: redisEnv(dirs[1]!.path, "B", REDIS_URL) });
    children.push(a, b);
    results.push(await run("Redis bus, both sides on A", a, a));
    results.push(await run("Redis bus, sender on A, recipient on B", a, b));
    await a.stop();
    await b.stop();
  }

  if (values.cluster) {
    cluster = await startCluster({ masters: 3 });
    const [ca, cb] = [tempDir("bench-ca-"), tempDir("bench-cb-")];
    dirs.push(ca, cb);
    const a = await spawnService({ dir: ca.path, env: redisEnv(ca.path, "CA", cluster.nodes[0]!.url) });
    const b = await spawnService({ dir: cb.path, env: redisEnv(cb.path, "CB", cluster.nodes[1]!.url) });
    children.push(a, b);
    results.push(await run("3-master cluster, both sides on A", a, a));
    results.push(await run("3-master cluster, sender on A, recipient on B", a, b));
  }
} finally {
  for (const c of children) if (c.proc.exitCode === null) await c.stop();
  await cluster?.stop();
  for (const d of dirs) d.remove();
  await removePrefix(prefix, REDIS_URL).catch(() => undefined);
}

console.log(
  `\n${PAIRS} conversations x ${MESSAGES} messages, window ${WINDOW} unacked per sender, SQLITE_SYNCHRONOUS=${process.env.SQLITE_SYNCHRONOUS ?? "FULL"}\n`,
);
console.log("| scenario | delivered | seconds | msg/s | p50 ms | p99 ms | max ms |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of results) {
  console.log(
    `| ${r.scenario} | ${r.delivered} | ${r.seconds.toFixed(2)} | ${Math.round(r.rate)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} |`,
  );
}
