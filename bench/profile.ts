import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadgen } from "./lib/drive.ts";
import { pairs } from "./lib/fixtures.ts";
import { startOurs, targetOf } from "./lib/servers.ts";
import type { ChatPhase, ChatPhaseResult, Spec } from "./loadgen.ts";

/**
 * Where the server's CPU goes: runs ours (SQLITE_SYNCHRONOUS=FULL) under Bun's sampling
 * profiler through one closed-loop phase and one open-loop phase (or, with --idle N, N idle
 * connections made as fast as it takes them), then prints the functions with the most self
 * time. The figures of record come from `npm run bench`; this explains them.
 * --sync OFF leaves out the wait for the disk, which a wall-clock profile counts as the commit's
 * own time; --rate 0 profiles the closed loop alone.
 *   npx bun bench/profile.ts [--rate 25000] [--seconds 5] [--top 30] [--idle 15000] [--sync FULL]
 */

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "25000" },
    seconds: { type: "string", default: "5" },
    top: { type: "string", default: "30" },
    pairs: { type: "string", default: "100" },
    idle: { type: "string" },
    sync: { type: "string", default: "FULL" },
  },
});
const seconds = Number(values.seconds);
const nPairs = Number(values.pairs);
const profDir = mkdtempSync(join(tmpdir(), "chat-prof-"));
const server = await startOurs({
  pairs: pairs(nPairs),
  synchronous: values.sync as "FULL" | "NORMAL" | "OFF",
  extraArgs: ["--cpu-prof-md", `--cpu-prof-dir=${profDir}`, "--cpu-prof-interval=250"],
});
const phases: ChatPhase[] = [{ kind: "closed", window: 2, warmupMs: 1000, measureMs: seconds * 1000 }];
if (Number(values.rate) > 0) {
  phases.push({ kind: "open", rate: Number(values.rate), warmupMs: 1000, measureMs: seconds * 1000 });
}
const target = targetOf(server);
const spec: Spec = values.idle
  ? { mode: "idle", target, pairs: nPairs, connections: Number(values.idle), concurrency: 200 }
  : { mode: "chat", target, pairs: nPairs, phases };
const results = await loadgen<ChatPhaseResult[] | Record<string, unknown>>(spec);
await server.stop();
if (!Array.isArray(results)) console.log(`idle: ${JSON.stringify(results)}`);
for (const r of Array.isArray(results) ? results : []) {
  const what = r.phase.kind === "closed" ? "closed loop" : `open ${r.phase.rate}/s`;
  console.log(
    `${what}: ${Math.round(r.msgs_per_s)} msgs/s, ${r.cpu_us_per_msg.toFixed(1)} µs CPU/msg, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms`,
  );
}
const file = readdirSync(profDir).find((f) => f.endsWith(".md"));
if (!file) throw new Error(`no profile written in ${profDir}`);
const md = readFileSync(join(profDir, file), "utf8");
// The markdown's tables list functions by self time first; print the head of that section.
const lines = md.split("\n");
const start = lines.findIndex((l) => /self/i.test(l) && l.startsWith("#"));
console.log(`\nprofile: ${join(profDir, file)}`);
console.log(lines.slice(Math.max(0, start), Math.max(0, start) + Number(values.top) + 4).join("\n"));
