import { parseArgs } from "node:util";
import { loadgen } from "./lib/drive.ts";
import { pairs } from "./lib/fixtures.ts";
import { metricValue, readMetrics } from "./lib/metrics-text.ts";
import { rssBytes } from "./lib/proc.ts";
import { startOurs, targetOf } from "./lib/servers.ts";
import type { ChatPhaseResult, Spec } from "./loadgen.ts";

/**
 * One server through round after round of the closed loop, without a restart: what the CPU per
 * message and the memory do as the store grows. The full bench repeats its phases on one server,
 * so its later closed-loop runs meet a store of a million messages or so; this shows how much
 * of a difference that makes, and that memory stays bounded meanwhile.
 *   npx bun bench/soak.ts [--rounds 8] [--seconds 4] [--pairs 500] [--sync FULL] [--root <other checkout>]
 */

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "8" },
    seconds: { type: "string", default: "4" },
    pairs: { type: "string", default: "500" },
    sync: { type: "string", default: "FULL" },
    root: { type: "string" },
  },
});
const n = Number(values.pairs);
const server = await startOurs({
  pairs: pairs(n),
  synchronous: values.sync as "FULL" | "NORMAL" | "OFF",
  root: values.root,
});
const target = targetOf(server);
const stored = async () => metricValue(await readMetrics(server.httpUrl), "chat_messages_in_total");

console.log(`soak · ${values.root ?? "this checkout"} · ${values.sync} · ${n} conversations, closed loop`);
for (let round = 1; round <= Number(values.rounds); round++) {
  const spec: Spec = {
    mode: "chat",
    target,
    pairs: n,
    phases: [{ kind: "closed", window: 2, warmupMs: 500, measureMs: Number(values.seconds) * 1000 }],
  };
  const [r] = await loadgen<ChatPhaseResult[]>(spec);
  if (!r) throw new Error("the load generator returned no phase");
  console.log(
    `round ${round}: ${Math.round(r.msgs_per_s)} msgs/s, ${r.cpu_us_per_msg.toFixed(1)} µs CPU/msg, p99 ${r.p99_ms} ms, ${await stored()} messages stored, RSS ${(rssBytes(server.pid) / 2 ** 20).toFixed(0)} MB`,
  );
}
await server.stop();
