import { parseArgs } from "node:util";
import { loadgen } from "./lib/drive.ts";
import { pairs } from "./lib/fixtures.ts";
import { metricValue, readMetrics } from "./lib/metrics-text.ts";
import { startBare, startOurs, targetOf } from "./lib/servers.ts";
import type { ChatPhase, ChatPhaseResult, Spec } from "./loadgen.ts";

/**
 * One open-loop rate (or, with --closed, the closed loop) against one build of ours, or with
 * --bare against the bare Bun.serve, two back-to-back windows: for A/B checks of a single figure
 * when the full bench's spread is larger than the difference looked for. With --idle N, the idle
 * workload instead (N connections: connects/s, CPU per connect, memory per connection).
 *   npx bun bench/one-phase.ts [--rate 25000 | --closed | --idle 15000] [--pairs 500] [--root <other checkout> | --bare] [--sync FULL]
 * Settings for ours through BENCH_OURS_ENV (e.g. '{"SQLITE_SYNC_THREAD":"true"}').
 */

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "25000" },
    pairs: { type: "string", default: "500" },
    root: { type: "string" },
    sync: { type: "string", default: "FULL" },
    closed: { type: "boolean", default: false },
    bare: { type: "boolean", default: false },
    idle: { type: "string" },
  },
});
const rate = Number(values.rate);
const n = Number(values.pairs);
const server = values.bare
  ? await startBare({ pairs: pairs(n) })
  : await startOurs({
      pairs: pairs(n),
      synchronous: values.sync as "FULL" | "NORMAL" | "OFF",
      root: values.root,
    });
// The closed loop keeps as many messages in flight as the full bench does (CLOSED_WINDOW there).
const phase = (warmupMs: number): ChatPhase =>
  values.closed
    ? { kind: "closed", window: 2, warmupMs, measureMs: 4000 }
    : { kind: "open", rate, warmupMs, measureMs: 4000 };
const target = targetOf(server);
const who = values.bare ? "bare Bun.serve" : (values.root ?? "this checkout");
if (values.idle) {
  const spec: Spec = { mode: "idle", target, pairs: n, connections: Number(values.idle), concurrency: 200 };
  const r = await loadgen<Record<string, number>>(spec);
  await server.stop();
  console.log(
    `${who} · ${r.connections} idle connections: ${r.connects_per_s} connects/s, ${r.cpu_us_per_connect} µs CPU/connect, ${r.rss_per_conn_kb} KB/connection`,
  );
  process.exit(0);
}
const spec: Spec = { mode: "chat", target, pairs: n, phases: [phase(2000), phase(500)] };
/**
 * Group commits so far and their mean size, from /metrics (both builds have that histogram), and
 * how long they held the loop per job and how many past 5 and 25 ms (builds with
 * chat_sqlite_commit_seconds).
 */
async function commits(): Promise<string> {
  const text = await readMetrics(server.httpUrl);
  const read = (series: string) => metricValue(text, series);
  const count = read("chat_sqlite_commit_batch_size_count");
  const sum = read("chat_sqlite_commit_batch_size_sum");
  if (Number.isNaN(count)) return "";
  const held = (le: string) => read(`chat_sqlite_commit_seconds_bucket{le="${le}"}`);
  const all = read("chat_sqlite_commit_seconds_count");
  // Wall time, the sync included when it runs on the loop: the part of a message's cost the commit holds.
  const perJob = (read("chat_sqlite_commit_seconds_sum") * 1e6) / sum;
  const stalls = Number.isNaN(all)
    ? ""
    : `; ${perJob.toFixed(1)} µs of commit a job; ${all - held("0.005")} held the loop over 5 ms, ${all - held("0.025")} over 25 ms`;
  return `; ${count} commits, ${(sum / count).toFixed(1)} jobs each${stalls}`;
}
const results = await loadgen<ChatPhaseResult[]>(spec);
const committed = await commits();
await server.stop();
for (const r of results) {
  console.log(
    `${who} · ${values.closed ? "closed loop" : `${rate}/s offered`}, ${n} conversations: ${Math.round(r.msgs_per_s)} msgs/s, ${r.cpu_us_per_msg.toFixed(1)} µs CPU/msg, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, load generator ${r.client_cpu_pct.toFixed(0)}%`,
  );
}
if (committed) console.log(`whole run${committed}`);
