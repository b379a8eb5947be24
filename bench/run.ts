import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ourToken, pairs } from "./lib/fixtures.ts";
import { prefill } from "./lib/prefill.ts";
import { loadAverage } from "./lib/proc.ts";
import { CLIENT_CPU, pinned, ROOT, type RunningServer, startCentrifugo, startOurs } from "./lib/servers.ts";
import type { ChatPhase, ChatPhaseResult, Spec } from "./loadgen.ts";

/**
 * The benchmark suite: our service side by side with Centrifugo on the same workloads, in the
 * same run. Servers run on CPU 0, the load generator on CPU 1; servers are ranked by their own
 * CPU time per delivered message, since one core of client saturates before a server does.
 *   npm run bench                 three runs per figure (a few minutes)
 *   npm run bench -- --quick      one short run per figure (about 30 s)
 *   npm run bench -- --only chat,idle,history,outbox
 */

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    // Another checkout of the service, for before/after tables (e.g. an exported older commit).
    "ours-root": { type: "string" },
  },
});
const quick = values.quick ?? false;
const oursRoot = values["ours-root"];
const only = new Set((values.only ?? "chat,idle,history,outbox").split(","));

const P = quick
  ? { runs: 1, warmupMs: 700, measureMs: 1000, rates: [10_000, 25_000, 50_000], idle: 2000, rows: 100_000 }
  : {
      runs: 3,
      warmupMs: 1000,
      measureMs: 3000,
      rates: [10_000, 25_000, 50_000],
      idle: 15_000,
      rows: 1_000_000,
    };
const PAIRS = 500;
const HOT = 10_000;
const CLOSED_WINDOW = 2;

const ps = pairs(PAIRS);
const started = new Date();
const loadAtStart = loadAverage();

function centrifugoBinary(): string {
  const r = Bun.spawnSync(["bash", join(ROOT, "bench/setup.sh")], { stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("bench/setup.sh failed: cannot install Centrifugo");
  return r.stdout.toString().trim().split("\n").pop()!;
}

async function loadgen<T>(spec: Spec): Promise<T> {
  const proc = Bun.spawn(pinned(CLIENT_CPU, [process.execPath, "bench/loadgen.ts", JSON.stringify(spec)]), {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`load generator failed (${code}):\n${err}${out}`);
  return JSON.parse(out.trim().split("\n").pop()!) as T;
}

const target = (s: RunningServer) => ({ protocol: s.kind, wsUrl: s.wsUrl, httpUrl: s.httpUrl, pid: s.pid });

function note(msg: string) {
  const [l1] = loadAverage();
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)} load ${l1.toFixed(2)}] ${msg}\n`);
}

// ---- statistics -----------------------------------------------------------------------------

interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number[];
}
function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: s[Math.floor((s.length - 1) / 2)] ?? Number.NaN,
    min: s[0] ?? Number.NaN,
    max: s.at(-1) ?? Number.NaN,
    runs: xs,
  };
}

// ---- workloads --------------------------------------------------------------------------------

type ChatFigures = Record<string, Record<string, Stat>>;

function phasesFor(): ChatPhase[] {
  const out: ChatPhase[] = [];
  // Runs interleave (closed, 10k, 25k, 50k, closed, …) so a burst of outside load hits one run
  // of each figure rather than all runs of one.
  for (let r = 0; r < P.runs; r++) {
    out.push({ kind: "closed", window: CLOSED_WINDOW, warmupMs: P.warmupMs, measureMs: P.measureMs });
    for (const rate of P.rates)
      out.push({ kind: "open", rate, warmupMs: P.warmupMs, measureMs: P.measureMs });
  }
  return out;
}

const phaseKey = (p: ChatPhase) => (p.kind === "closed" ? "closed" : `open_${p.rate / 1000}k`);

async function chatWorkload(
  server: RunningServer,
): Promise<{ figures: ChatFigures; raw: ChatPhaseResult[] }> {
  note(`chat: ${server.label}`);
  const raw = await loadgen<ChatPhaseResult[]>({
    mode: "chat",
    target: target(server),
    pairs: PAIRS,
    phases: phasesFor(),
  });
  const figures: ChatFigures = {};
  const keys = [
    "msgs_per_s",
    "cpu_us_per_msg",
    "server_cpu_pct",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "undelivered",
  ] as const;
  for (const key of new Set(raw.map((r) => phaseKey(r.phase)))) {
    const rs = raw.filter((r) => phaseKey(r.phase) === key);
    figures[key] = Object.fromEntries(keys.map((k) => [k, stat(rs.map((r) => r[k]))]));
  }
  return { figures, raw };
}

interface IdleResult {
  connections: number;
  connects_per_s: number;
  cpu_us_per_connect: number;
  rss_per_conn_kb: number;
  rss_before_mb: number;
  rss_after_mb: number;
}

async function idleWorkload(start: () => Promise<RunningServer>) {
  const raw: IdleResult[] = [];
  for (let r = 0; r < P.runs; r++) {
    const server = await start();
    note(`idle: ${server.label}, ${P.idle} connections, run ${r + 1}`);
    try {
      raw.push(
        await loadgen<IdleResult>({
          mode: "idle",
          target: target(server),
          pairs: PAIRS,
          connections: P.idle,
          concurrency: 200,
        }),
      );
    } finally {
      await server.stop();
    }
  }
  const keys = ["rss_per_conn_kb", "connects_per_s", "cpu_us_per_connect"] as const;
  return { figures: Object.fromEntries(keys.map((k) => [k, stat(raw.map((x) => x[k]))])), raw };
}

interface HistoryResult {
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  cpu_us_per_req: number;
  errors: number;
}

async function historyWorkload() {
  const dir = join(ROOT, ".tmp");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `history-${process.pid}.db`);
  note(`history: prefilling ${P.rows.toLocaleString()} rows`);
  const t0 = performance.now();
  const { conversationId } = prefill(path, ps, P.rows, HOT);
  const prefillS = (performance.now() - t0) / 1000;
  const server = await startOurs({ pairs: ps, sqlitePath: path, label: "ours (history)", root: oursRoot });
  try {
    const p = ps[0]!;
    const tokens = [await ourToken(p.mentorId), await ourToken(p.studentId)];
    const raw: HistoryResult[] = [];
    for (let r = 0; r < P.runs; r++) {
      note(`history: run ${r + 1}`);
      raw.push(
        await loadgen<HistoryResult>({
          mode: "history",
          target: target(server),
          path: `/messages?conversation_id=${conversationId}&limit=50`,
          tokens,
          concurrency: 16,
          warmupMs: P.warmupMs,
          measureMs: P.measureMs,
        }),
      );
    }
    const keys = ["req_per_s", "p50_ms", "p99_ms", "cpu_us_per_req", "errors"] as const;
    return {
      rows: P.rows,
      prefill_s: Number(prefillS.toFixed(1)),
      figures: Object.fromEntries(keys.map((k) => [k, stat(raw.map((x) => x[k]))])),
      raw,
    };
  } finally {
    await server.stop();
    for (const suffix of ["", "-wal", "-shm"]) Bun.spawnSync(["rm", "-f", `${path}${suffix}`]);
  }
}

/** Workload 4: bench/outbox.ts drains a backlog written while MongoDB (FerretDB) was down. */
async function outboxWorkload(): Promise<unknown> {
  const file = join(ROOT, "bench/outbox.ts");
  if (!existsSync(file)) return "n/a (bench/outbox.ts missing)";
  note("outbox: bench/outbox.ts");
  const proc = Bun.spawn([process.execPath, file, ...(quick ? ["--quick"] : [])], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "inherit",
  });
  const out = await new Response(proc.stdout).text();
  const code = await proc.exited;
  const last = out.trim().split("\n").pop() ?? "";
  try {
    return { exit: code, result: JSON.parse(last) };
  } catch {
    return { exit: code, output: out.trim().slice(-2000) };
  }
}

// ---- the run ------------------------------------------------------------------------------------

const results: Record<string, unknown> = {};
const centrifugo = only.has("chat") || only.has("idle") ? centrifugoBinary() : "";

if (only.has("chat")) {
  const chat: Record<string, { figures: ChatFigures; raw: ChatPhaseResult[] }> = {};
  const starts: Array<[string, () => Promise<RunningServer>]> = [
    ["ours_full", () => startOurs({ pairs: ps, synchronous: "FULL", root: oursRoot })],
    ["ours_off", () => startOurs({ pairs: ps, synchronous: "OFF", root: oursRoot })],
    ["centrifugo", () => startCentrifugo(centrifugo)],
  ];
  for (const [name, start] of starts) {
    const server = await start();
    try {
      chat[name] = await chatWorkload(server);
    } finally {
      await server.stop();
    }
  }
  results.chat = chat;
}
if (only.has("idle")) {
  results.idle = {
    ours: await idleWorkload(() => startOurs({ pairs: ps, root: oursRoot })),
    centrifugo: await idleWorkload(() => startCentrifugo(centrifugo)),
  };
}
if (only.has("history")) results.history = await historyWorkload();
if (only.has("outbox")) results.outbox = await outboxWorkload();

const loadAtEnd = loadAverage();
const meta = {
  date: started.toISOString(),
  command: `npm run bench${quick ? " -- --quick" : ""}${oursRoot ? ` (ours from ${oursRoot})` : ""}`,
  quick,
  runs: P.runs,
  machine: `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores`,
  bun: Bun.version,
  centrifugo: "v6.9.1 (go install; reports 0.0.0)",
  load_average_start: loadAtStart,
  load_average_end: loadAtEnd,
  git: Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT }).stdout.toString().trim(),
};

// ---- the table ----------------------------------------------------------------------------------

const fmt = (x: number) =>
  !Number.isFinite(x)
    ? "–"
    : Math.abs(x) >= 1000
      ? Math.round(x).toLocaleString("en-US")
      : Math.abs(x) >= 10
        ? x.toFixed(1)
        : x.toFixed(2);
const cell = (s: Stat | undefined) =>
  !s ? "–" : P.runs === 1 ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
const ratio = (a: Stat | undefined, b: Stat | undefined) =>
  a && b && b.median !== 0 ? `${(a.median / b.median).toFixed(2)}×` : "–";

const rows: string[][] = [];
const chat = results.chat as Record<string, { figures: ChatFigures }> | undefined;
if (chat) {
  const labels: Record<string, string> = { closed: `closed loop (window ${CLOSED_WINDOW}/socket)` };
  for (const r of P.rates) labels[`open_${r / 1000}k`] = `open loop ${r / 1000}k/s offered`;
  const figs: Array<[string, string]> = [
    ["msgs_per_s", "delivered msgs/s"],
    ["cpu_us_per_msg", "server CPU µs / delivered msg"],
    ["p50_ms", "p50 ms"],
    ["p99_ms", "p99 ms"],
    ["p999_ms", "p999 ms"],
  ];
  for (const [phase, label] of Object.entries(labels)) {
    for (const [k, name] of figs) {
      const f = chat.ours_full?.figures[phase]?.[k];
      const o = chat.ours_off?.figures[phase]?.[k];
      const c = chat.centrifugo?.figures[phase]?.[k];
      rows.push([`1 chat, ${label}`, name, cell(f), cell(o), cell(c), ratio(f, c), ratio(f, o)]);
    }
  }
}
const idleRes = results.idle as Record<string, { figures: Record<string, Stat> }> | undefined;
if (idleRes) {
  for (const [k, name] of [
    ["rss_per_conn_kb", "RSS KB / connection"],
    ["connects_per_s", "connects/s"],
    ["cpu_us_per_connect", "server CPU µs / connect"],
  ] as const) {
    const f = idleRes.ours?.figures[k];
    const c = idleRes.centrifugo?.figures[k];
    rows.push([
      `2 idle, ${P.idle.toLocaleString("en-US")} connections`,
      name,
      cell(f),
      "",
      cell(c),
      ratio(f, c),
      "",
    ]);
  }
}
const hist = results.history as { figures: Record<string, Stat>; rows: number } | undefined;
if (hist) {
  for (const [k, name] of [
    ["req_per_s", "req/s"],
    ["p50_ms", "p50 ms"],
    ["p99_ms", "p99 ms"],
    ["cpu_us_per_req", "server CPU µs / req"],
  ] as const) {
    rows.push([
      `3 history, page of 50 of ${HOT.toLocaleString("en-US")} among ${hist.rows.toLocaleString("en-US")}`,
      name,
      cell(hist.figures[k]),
      "",
      "n/a",
      "",
      "",
    ]);
  }
}
if (only.has("outbox")) {
  const o = results.outbox as
    | string
    | { exit: number; output?: string; result?: Record<string, number> }
    | undefined;
  const r = typeof o === "object" && o.exit === 0 ? o.result : undefined;
  const label = r ? `4 outbox → MongoDB (FerretDB), ${r.backlog} backlog` : "4 outbox → MongoDB";
  const figures: Array<[string, string]> = r
    ? [
        ["drain time s", String(r.drain_s)],
        ["flush msgs/s", String(r.flush_per_s)],
        ["live ack p50 ms during drain", String(r.live_ack_p50_ms)],
        ["live ack p99 ms during drain", String(r.live_ack_p99_ms)],
      ]
    : [["flush rate", typeof o === "string" ? o : `failed: ${JSON.stringify(o).slice(0, 200)}`]];
  for (const [figure, value] of figures) rows.push([label, figure, value, "", "n/a", "", ""]);
}

const header = [
  "workload",
  "figure",
  "ours, FULL",
  "ours, OFF",
  "Centrifugo",
  "FULL ÷ Centrifugo",
  "FULL ÷ OFF",
];
const table = [
  `Benchmark ${meta.date} · ${meta.command} · ${meta.machine} · Bun ${meta.bun} · Centrifugo ${meta.centrifugo}`,
  `load average at start ${loadAtStart.join(" ")}, at end ${loadAtEnd.join(" ")} · ${P.runs === 1 ? "one run per figure" : `median (min–max) of ${P.runs} runs`} · git ${meta.git}`,
  "",
  `| ${header.join(" | ")} |`,
  `|${header.map(() => "---").join("|")}|`,
  ...rows.map((r) => `| ${r.join(" | ")} |`),
].join("\n");
console.log(table);

const outDir = join(ROOT, "bench/results");
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `${meta.date.replaceAll(":", "-")}${quick ? "-quick" : ""}.json`);
const json = JSON.stringify({ meta, table, results }, null, 2);
writeFileSync(file, json);
writeFileSync(join(outDir, "latest.json"), json);
console.log(`\nwritten ${file}`);
