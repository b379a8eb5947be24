import { parseArgs } from "node:util";
import { spawnService, tempDir } from "../tests/helpers/service.ts";
import { mintToken } from "../tests/helpers/tokens.ts";

/**
 * One sender → one receiver through the real service (child process, durable SQLite
 * commits before each ack). The sender keeps a window of unacked messages in flight.
 *   npx bun bench/quick-throughput.ts [--seconds 10] [--window 64] [--sync FULL|NORMAL|OFF]
 */
const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    window: { type: "string", default: "64" },
    sync: { type: "string", default: "FULL" },
  },
});
const seconds = Number(values.seconds);
const window = Number(values.window);

const dir = tempDir("chat-bench-");
const svc = await spawnService({
  dir: dir.path,
  env: {
    LOG_LEVEL: "info",
    SQLITE_SYNCHRONOUS: String(values.sync),
    RATE_MESSAGES_PER_S: "100000",
    RATE_MESSAGES_BURST: "100000",
    RATE_USER_MESSAGES_PER_S: "100000",
  },
});
const open = async (user: number, q: string) => {
  const ws = new WebSocket(`${svc.wsUrl}?${q}&token=${await mintToken(user)}`);
  await new Promise((r, j) => {
    ws.onopen = r;
    ws.onerror = j;
  });
  return ws;
};
const sender = await open(10, "lesson_id=5&student_id=15");
const receiver = await open(15, "lesson_id=5");

let acked = 0;
let received = 0;
let inFlight = 0;
let running = true;
const latencies: number[] = [];
const sentAt = new Map<string, number>();
let seq = 0;

const pump = () => {
  while (running && inFlight < window) {
    const id = `b${seq++}`;
    sentAt.set(id, performance.now());
    sender.send(`{"type":"message","text":"hello bench","client_id":"${id}"}`);
    inFlight++;
  }
};
sender.onmessage = (e) => {
  const s = String(e.data);
  if (!s.startsWith('{"type":"ack"')) return;
  const f = JSON.parse(s) as { client_id: string };
  latencies.push(performance.now() - sentAt.get(f.client_id)!);
  sentAt.delete(f.client_id);
  acked++;
  inFlight--;
  pump();
};
receiver.onmessage = (e) => {
  if (String(e.data).startsWith('{"type":"message"')) received++;
};

const cpuBefore = process.cpuUsage();
const started = performance.now();
pump();
await Bun.sleep(seconds * 1000);
running = false;
const elapsed = (performance.now() - started) / 1000;
await Bun.sleep(300);
latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!.toFixed(2);
const result = {
  seconds: Number(elapsed.toFixed(1)),
  synchronous: values.sync,
  window,
  acked_per_s: Math.round(acked / elapsed),
  delivered_per_s: Math.round(received / elapsed),
  ack_latency_ms: { p50: pct(50), p99: pct(99), max: pct(100) },
  client_cpu_s: Number(
    ((process.cpuUsage(cpuBefore).user + process.cpuUsage(cpuBefore).system) / 1e6).toFixed(2),
  ),
};
console.log(JSON.stringify(result));
sender.close();
receiver.close();
await svc.stop();
dir.remove();
