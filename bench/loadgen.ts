import { build } from "hdr-histogram-js";
import { type ChatSocket, openChatSocket, type Protocol } from "./lib/clients.ts";
import { pairs as makePairs, type Pair } from "./lib/fixtures.ts";
import { cpuMicros, rssBytes } from "./lib/proc.ts";

/**
 * The load generator, run as its own process pinned to the other CPU: `bun bench/loadgen.ts
 * '<json spec>'`. It drives one server, samples that server's CPU and memory from /proc around
 * each measurement window, and prints one JSON line with the results.
 */

export interface Target {
  protocol: Protocol;
  wsUrl: string;
  httpUrl: string;
  pid: number;
}

export type ChatPhase =
  | { kind: "closed"; window: number; warmupMs: number; measureMs: number }
  | { kind: "open"; rate: number; warmupMs: number; measureMs: number };

export type Spec =
  | { mode: "chat"; target: Target; pairs: number; phases: ChatPhase[] }
  | { mode: "idle"; target: Target; pairs: number; connections: number; concurrency: number }
  | {
      mode: "history";
      target: Target;
      path: string;
      tokens: string[];
      concurrency: number;
      warmupMs: number;
      measureMs: number;
    };

export interface ChatPhaseResult {
  phase: ChatPhase;
  seconds: number;
  sent: number;
  delivered: number;
  msgs_per_s: number;
  cpu_us_per_msg: number;
  server_cpu_pct: number;
  /** The load generator's own CPU: near 100 means the client, not the server, set the pace. */
  client_cpu_pct: number;
  p50_ms: number;
  p99_ms: number;
  p999_ms: number;
  /** Messages sent in the window that never reached the other side before the drain deadline. */
  undelivered: number;
}

const histogram = () =>
  build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
const ms = (us: number) => Math.round(us) / 1000;

async function pool<T>(n: number, concurrency: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await make(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out;
}

async function chat(spec: Extract<Spec, { mode: "chat" }>): Promise<ChatPhaseResult[]> {
  const { target } = spec;
  const ps = makePairs(spec.pairs);
  const n = ps.length * 2;
  const hist = histogram();
  let windowStart = Number.POSITIVE_INFINITY;
  let windowEnd = Number.POSITIVE_INFINITY;
  let deliveredInWindow = 0;
  let outstanding = 0; // sent in the window, not yet delivered
  const inflight = new Int32Array(n);
  let closedWindow = 0;
  let running = false;
  let seq = 0;
  const sockets: ChatSocket[] = new Array(n);

  const sendFrom = (slot: number, intended: number) => {
    if (intended >= windowStart && intended < windowEnd) outstanding++;
    inflight[slot]!++;
    // Slot and intended send time travel in the text; the other side measures from them.
    sockets[slot]!.send(`${slot}:${intended.toFixed(3)}`, `b${slot}-${seq++}`);
  };

  const hooksFor = (slot: number) => ({
    delivered(text: string) {
      const now = performance.now();
      const colon = text.indexOf(":");
      const intended = Number(text.slice(colon + 1));
      if (now >= windowStart && now < windowEnd) deliveredInWindow++;
      if (intended >= windowStart && intended < windowEnd) {
        hist.recordValue(Math.max(1, Math.round((now - intended) * 1000)));
        outstanding--;
      }
    },
    acked() {
      inflight[slot]!--;
      if (running && closedWindow > 0 && inflight[slot]! < closedWindow) sendFrom(slot, performance.now());
    },
  });

  await pool(n, 100, async (slot) => {
    const pair = ps[slot >> 1] as Pair;
    sockets[slot] = await openChatSocket(
      target.protocol,
      target.wsUrl,
      pair,
      (slot & 1) === 0,
      hooksFor(slot),
    );
  });

  const results: ChatPhaseResult[] = [];
  for (const phase of spec.phases) {
    hist.reset();
    deliveredInWindow = 0;
    outstanding = 0;
    windowStart = Number.POSITIVE_INFINITY;
    windowEnd = Number.POSITIVE_INFINITY;
    running = true;
    let sentInWindow = 0;
    let ticker: Promise<void> | undefined;
    if (phase.kind === "closed") {
      closedWindow = phase.window;
      for (let slot = 0; slot < n; slot++)
        for (let k = 0; k < phase.window; k++) sendFrom(slot, performance.now());
    } else {
      closedWindow = 0;
      // Open loop: message k is due at start + k/rate whatever the server does; latency is
      // measured from that intended time, so a stalled server cannot hide its queueing.
      const start = performance.now();
      const interval = 1000 / phase.rate;
      ticker = (async () => {
        let k = 0;
        const sendUpTo = (due: number) => {
          for (; k < due; k++) {
            const intended = start + k * interval;
            if (intended >= windowStart && intended < windowEnd) sentInWindow++;
            sendFrom(k % n, intended);
          }
        };
        while (running) {
          sendUpTo(Math.floor((performance.now() - start) / interval));
          await new Promise((r) => setImmediate(r));
        }
        // What fell due inside the window after this loop's last turn is still sent, late, and
        // counted from its intended time: dropping it would cut the window's tail, by as much
        // as the client lags (the busier the phase, the more).
        sendUpTo(Math.ceil((windowEnd - start) / interval));
      })();
    }
    await Bun.sleep(phase.warmupMs);
    const cpu0 = cpuMicros(target.pid);
    const own0 = process.cpuUsage();
    windowStart = performance.now();
    const seqAtStart = seq;
    await Bun.sleep(phase.measureMs);
    windowEnd = performance.now();
    const cpu1 = cpuMicros(target.pid);
    const own = process.cpuUsage(own0);
    const delivered = deliveredInWindow;
    running = false;
    await ticker;
    if (phase.kind === "closed") sentInWindow = seq - seqAtStart;
    // Let what was sent in the window arrive, then let every ack come back before the next
    // phase: an overloaded phase (50k offered) must not leave its queue to the next figure.
    const drainDeadline = performance.now() + 30_000;
    while (performance.now() < drainDeadline && (outstanding > 0 || inflight.some((x) => x > 0))) {
      await Bun.sleep(20);
    }
    const seconds = (windowEnd - windowStart) / 1000;
    results.push({
      phase,
      seconds: Number(seconds.toFixed(2)),
      sent: sentInWindow,
      delivered,
      msgs_per_s: Math.round(delivered / seconds),
      cpu_us_per_msg: Number(((cpu1 - cpu0) / Math.max(1, delivered)).toFixed(2)),
      server_cpu_pct: Number((((cpu1 - cpu0) / 1e6 / seconds) * 100).toFixed(1)),
      client_cpu_pct: Number((((own.user + own.system) / 1e6 / seconds) * 100).toFixed(1)),
      p50_ms: ms(hist.getValueAtPercentile(50)),
      p99_ms: ms(hist.getValueAtPercentile(99)),
      p999_ms: ms(hist.getValueAtPercentile(99.9)),
      undelivered: Math.max(0, outstanding),
    });
    await Bun.sleep(300);
  }
  for (const s of sockets) s.close();
  return results;
}

async function idle(spec: Extract<Spec, { mode: "idle" }>) {
  const { target } = spec;
  const ps = makePairs(spec.pairs);
  const noop = { delivered() {}, acked() {} };
  // One-off costs (JIT of the connect path, lazily built tables) are not per connection:
  // both servers get the same warm-up round before the baseline is read.
  const warm = await pool(200, 50, (i) =>
    openChatSocket(target.protocol, target.wsUrl, ps[(i >> 1) % ps.length]!, (i & 1) === 0, noop),
  );
  for (const s of warm) s.close();
  await Bun.sleep(1500);
  const rssBefore = rssBytes(target.pid);
  const cpu0 = cpuMicros(target.pid);
  const t0 = performance.now();
  const sockets = await pool(spec.connections, spec.concurrency, (i) =>
    openChatSocket(target.protocol, target.wsUrl, ps[(i >> 1) % ps.length]!, (i & 1) === 0, noop),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu1 = cpuMicros(target.pid);
  // Let allocator and GC settle so RSS is what the connections keep, not what connecting cost.
  await Bun.sleep(3000);
  const rssAfter = rssBytes(target.pid);
  for (const s of sockets) s.close();
  await Bun.sleep(500);
  return {
    connections: spec.connections,
    seconds: Number(elapsed.toFixed(2)),
    connects_per_s: Math.round(spec.connections / elapsed),
    cpu_us_per_connect: Math.round((cpu1 - cpu0) / spec.connections),
    rss_before_mb: Number((rssBefore / 2 ** 20).toFixed(1)),
    rss_after_mb: Number((rssAfter / 2 ** 20).toFixed(1)),
    rss_per_conn_kb: Number(((rssAfter - rssBefore) / spec.connections / 1024).toFixed(2)),
  };
}

async function history(spec: Extract<Spec, { mode: "history" }>) {
  const { target } = spec;
  const hist = histogram();
  const url = `${target.httpUrl}${spec.path}`;
  let measuring = false;
  let stop = false;
  let done = 0;
  let errors = 0;
  let firstError = "";
  const worker = async (w: number) => {
    const headers = { Authorization: `Bearer ${spec.tokens[w % spec.tokens.length]}` };
    while (!stop) {
      const t = performance.now();
      const r = await fetch(url, { headers });
      const body = await r.arrayBuffer();
      if (!r.ok) {
        errors++;
        firstError ||= `${r.status} ${new TextDecoder().decode(body).slice(0, 200)}`;
      }
      if (measuring) {
        hist.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
        done++;
      }
    }
  };
  const workers = Array.from({ length: spec.concurrency }, (_, w) => worker(w));
  await Bun.sleep(spec.warmupMs);
  const cpu0 = cpuMicros(target.pid);
  const t0 = performance.now();
  measuring = true;
  await Bun.sleep(spec.measureMs);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuMicros(target.pid);
  stop = true;
  await Promise.all(workers);
  return {
    seconds: Number(seconds.toFixed(2)),
    requests: done,
    req_per_s: Math.round(done / seconds),
    cpu_us_per_req: Number(((cpu1 - cpu0) / Math.max(1, done)).toFixed(1)),
    p50_ms: ms(hist.getValueAtPercentile(50)),
    p99_ms: ms(hist.getValueAtPercentile(99)),
    errors,
    first_error: firstError || undefined,
  };
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as Spec;
  const result =
    spec.mode === "chat" ? await chat(spec) : spec.mode === "idle" ? await idle(spec) : await history(spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
