import { parseArgs } from "node:util";
import { loadgen } from "./lib/drive.ts";
import { pairs } from "./lib/fixtures.ts";
import { startOurs } from "./lib/servers.ts";
import type { ChatPhaseResult, Spec } from "./loadgen.ts";

/**
 * One open-loop rate against one build of ours, two back-to-back windows: for A/B checks of a
 * single figure when the full bench's spread is larger than the difference looked for.
 *   npx bun bench/one-phase.ts [--rate 25000] [--pairs 500] [--root <other checkout>] [--sync FULL]
 * Settings for ours through BENCH_OURS_ENV (e.g. '{"SQLITE_SYNC_THREAD":"true"}').
 */

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "25000" },
    pairs: { type: "string", default: "500" },
    root: { type: "string" },
    sync: { type: "string", default: "FULL" },
  },
});
const rate = Number(values.rate);
const n = Number(values.pairs);
const server = await startOurs({
  pairs: pairs(n),
  synchronous: values.sync as "FULL" | "NORMAL" | "OFF",
  root: values.root,
});
const spec: Spec = {
  mode: "chat",
  target: { protocol: "ours", wsUrl: server.wsUrl, httpUrl: server.httpUrl, pid: server.pid },
  pairs: n,
  phases: [
    { kind: "open", rate, warmupMs: 2000, measureMs: 4000 },
    { kind: "open", rate, warmupMs: 500, measureMs: 4000 },
  ],
};
/** Group commits so far and their mean size, from /metrics (both builds have the histogram). */
async function commits(): Promise<string> {
  const text = await fetch(`${server.httpUrl}/metrics`).then(
    (r) => (r.ok ? r.text() : ""),
    () => "",
  );
  const read = (name: string) =>
    Number(new RegExp(`^${name} ([0-9.e+]+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  const count = read("chat_sqlite_commit_batch_size_count");
  const sum = read("chat_sqlite_commit_batch_size_sum");
  return Number.isNaN(count) ? "" : `; ${count} commits, ${(sum / count).toFixed(1)} jobs each`;
}
const results = await loadgen<ChatPhaseResult[]>(spec);
const committed = await commits();
await server.stop();
for (const r of results) {
  console.log(
    `${values.root ?? "this checkout"} · ${rate}/s offered, ${n} conversations: ${Math.round(r.msgs_per_s)} msgs/s, ${r.cpu_us_per_msg.toFixed(1)} µs CPU/msg, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, load generator ${r.client_cpu_pct.toFixed(0)}%`,
  );
}
if (committed) console.log(`whole run${committed}`);
