import { statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadgen } from "./lib/drive.ts";
import { pairs } from "./lib/fixtures.ts";
import { startOurs, targetOf } from "./lib/servers.ts";
import type { ChatPhaseResult, Spec } from "./loadgen.ts";

/**
 * The WAL under a flood: ours (SQLITE_SYNCHRONOUS=FULL) takes open-loop load for `--seconds`
 * while the WAL file's size is sampled every 50 ms. With SQLITE_SYNC_THREAD (on here unless
 * `--thread false`) checkpoints run on their own thread and the writer pauses when they fall
 * behind, so the WAL must stay small however long the flood.
 *   npx bun bench/wal-flood.ts [--rate 50000] [--seconds 30] [--thread false]
 */

const { values } = parseArgs({
  options: {
    rate: { type: "string", default: "50000" },
    seconds: { type: "string", default: "30" },
    pairs: { type: "string", default: "100" },
    thread: { type: "string", default: "true" },
  },
});
const nPairs = Number(values.pairs);
const server = await startOurs({
  pairs: pairs(nPairs),
  synchronous: "FULL",
  env: { SQLITE_SYNC_THREAD: values.thread === "false" ? "false" : "true" },
});
const wal = join(server.dir, "chat.db-wal");
let maxBytes = 0;
const sizes: number[] = [];
const sampler = setInterval(() => {
  try {
    const size = statSync(wal).size;
    sizes.push(size);
    if (size > maxBytes) maxBytes = size;
  } catch {
    // not created yet
  }
}, 50);
const spec: Spec = {
  mode: "chat",
  target: targetOf(server),
  pairs: nPairs,
  phases: [
    { kind: "open", rate: Number(values.rate), warmupMs: 1000, measureMs: Number(values.seconds) * 1000 },
  ],
};
const [r] = await loadgen<ChatPhaseResult[]>(spec).finally(() => clearInterval(sampler));
await server.stop();
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
console.log(
  `flood ${values.rate}/s offered for ${values.seconds} s, ${nPairs} conversations: ${Math.round(r!.msgs_per_s)} msgs/s delivered (${r!.delivered} in all), p50 ${r!.p50_ms} ms, p99 ${r!.p99_ms} ms`,
);
console.log(
  `WAL file: largest ${mb(maxBytes)} MB, at the end ${mb(sizes.at(-1) ?? 0)} MB (${sizes.length} samples)`,
);
