import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Column, runsIn, selectColumns } from "./lib/columns.ts";
import { loadgen } from "./lib/drive.ts";
import { ourToken, pairs } from "./lib/fixtures.ts";
import { prefill } from "./lib/prefill.ts";
import { loadAverage } from "./lib/proc.ts";
import { renderTable, type SuiteResults } from "./lib/report.ts";
import { ROOT, type RunningServer, startBare, startCentrifugo, startOurs, targetOf } from "./lib/servers.ts";
import { type Figures, figuresOf } from "./lib/stats.ts";
import { renderTargets } from "./lib/targets.ts";
import type { ChatPhase, ChatPhaseResult } from "./loadgen.ts";

/**
 * The benchmark suite: our service side by side with a bare Bun.serve (the transport's own
 * cost) and Centrifugo on the same workloads, in the same run. Servers run on CPU 0, the load
 * generator on CPU 1; servers are ranked by their own CPU time per delivered message, since one
 * core of client saturates before a server does.
 *   npm run bench                 three runs per figure (a few minutes)
 *   npm run bench -- --quick      one short run per figure
 *   npm run bench -- --only chat,idle,history,outbox
 *   npm run bench -- --servers ours_full,bare      a subset of columns (no Centrifugo)
 *   npm run bench -- --baseline-root <dir>         adds ours_before: another checkout, FULL
 */

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    servers: { type: "string" },
    // Another checkout of the service run as `ours` (e.g. an exported older commit).
    "ours-root": { type: "string" },
    // Another checkout run beside ours as `ours_before`, for before/after tables in one run.
    "baseline-root": { type: "string" },
  },
});
const quick = values.quick ?? false;
const oursRoot = values["ours-root"];
const baselineRoot = values["baseline-root"];
const only = new Set((values.only ?? "chat,idle,history,outbox").split(","));
const columns = selectColumns(values.servers, baselineRoot);
for (const root of [oursRoot, baselineRoot]) {
  if (root && !existsSync(join(root, "src/main.ts"))) throw new Error(`${root}: no src/main.ts there`);
}

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

function note(msg: string) {
  const [l1] = loadAverage();
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)} load ${l1.toFixed(2)}] ${msg}\n`);
}

// ---- workloads --------------------------------------------------------------------------------

type ChatFigures = Record<string, Figures>;

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
const CHAT_KEYS = [
  "msgs_per_s",
  "cpu_us_per_msg",
  "server_cpu_pct",
  "client_cpu_pct",
  "p50_ms",
  "p99_ms",
  "p999_ms",
  "undelivered",
] as const;

async function chatWorkload(
  server: RunningServer,
): Promise<{ figures: ChatFigures; raw: ChatPhaseResult[] }> {
  note(`chat: ${server.label}`);
  const raw = await loadgen<ChatPhaseResult[]>({
    mode: "chat",
    target: targetOf(server),
    pairs: PAIRS,
    phases: phasesFor(),
  });
  const figures: ChatFigures = {};
  for (const key of new Set(raw.map((r) => phaseKey(r.phase)))) {
    figures[key] = figuresOf(
      raw.filter((r) => phaseKey(r.phase) === key),
      CHAT_KEYS,
    );
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
          target: targetOf(server),
          pairs: PAIRS,
          connections: P.idle,
          concurrency: 200,
        }),
      );
    } finally {
      await server.stop();
    }
  }
  return { figures: figuresOf(raw, ["rss_per_conn_kb", "connects_per_s", "cpu_us_per_connect"]), raw };
}

interface HistoryResult {
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  cpu_us_per_req: number;
  errors: number;
}

/** A fresh prefilled file per server, so neither reads what the other's start may have changed. */
async function historyWorkload(root: string | undefined, label: string) {
  const dir = join(ROOT, ".tmp");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `history-${process.pid}.db`);
  note(`history: prefilling ${P.rows.toLocaleString()} rows for ${label}`);
  const t0 = performance.now();
  const { conversationId } = prefill(path, ps, P.rows, HOT);
  const prefillS = (performance.now() - t0) / 1000;
  const server = await startOurs({ pairs: ps, sqlitePath: path, label, root });
  try {
    const p = ps[0]!;
    const tokens = [await ourToken(p.mentorId), await ourToken(p.studentId)];
    const raw: HistoryResult[] = [];
    for (let r = 0; r < P.runs; r++) {
      note(`history: ${label}, run ${r + 1}`);
      raw.push(
        await loadgen<HistoryResult>({
          mode: "history",
          target: targetOf(server),
          path: `/messages?conversation_id=${conversationId}&limit=50`,
          tokens,
          concurrency: 16,
          warmupMs: P.warmupMs,
          measureMs: P.measureMs,
        }),
      );
    }
    const keys = ["req_per_s", "p50_ms", "p99_ms", "cpu_us_per_req", "errors"] as const;
    return { prefill_s: Number(prefillS.toFixed(1)), figures: figuresOf(raw, keys), raw };
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

const needsCentrifugo = columns.includes("centrifugo") && (only.has("chat") || only.has("idle"));
const centrifugoBin = needsCentrifugo ? centrifugoBinary() : "";
/** Each column's server, as chat and idle start it; `ours_before` is the baseline checkout. */
const starters: Record<Column, () => Promise<RunningServer>> = {
  ours_full: () => startOurs({ pairs: ps, synchronous: "FULL", root: oursRoot }),
  ours_off: () => startOurs({ pairs: ps, synchronous: "OFF", root: oursRoot }),
  ours_before: () =>
    startOurs({ pairs: ps, synchronous: "FULL", root: baselineRoot, label: "ours before (FULL)" }),
  bare: () => startBare({ pairs: ps }),
  centrifugo: () => startCentrifugo(centrifugoBin),
};
const historyRoots: Partial<Record<Column, string | undefined>> = {
  ours_full: oursRoot,
  ours_before: baselineRoot,
};

const results: SuiteResults = {};
if (only.has("chat")) {
  const chat: NonNullable<SuiteResults["chat"]> = {};
  for (const column of runsIn("chat", columns)) {
    const server = await starters[column]();
    try {
      chat[column] = await chatWorkload(server);
    } finally {
      await server.stop();
    }
  }
  results.chat = chat;
}
if (only.has("idle")) {
  const idle: NonNullable<SuiteResults["idle"]> = {};
  for (const column of runsIn("idle", columns)) idle[column] = await idleWorkload(starters[column]);
  results.idle = idle;
}
if (only.has("history") && runsIn("history", columns).length > 0) {
  const history: NonNullable<SuiteResults["history"]> = { rows: P.rows, columns: {} };
  for (const column of runsIn("history", columns)) {
    history.columns[column] = await historyWorkload(historyRoots[column], `${column} (history)`);
  }
  results.history = history;
}
if (only.has("outbox") && columns.includes("ours_full")) results.outbox = await outboxWorkload();

const loadAtEnd = loadAverage();
const args = process.argv.slice(2);
const meta = {
  date: started.toISOString(),
  command: `npm run bench${args.length > 0 ? ` -- ${args.join(" ")}` : ""}`,
  quick,
  runs: P.runs,
  servers: columns,
  machine: `${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores`,
  bun: Bun.version,
  centrifugo: "v6.9.1 (go install; reports 0.0.0)",
  load_average_start: loadAtStart,
  load_average_end: loadAtEnd,
  git: Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT }).stdout.toString().trim(),
};

// ---- the table ----------------------------------------------------------------------------------

const shape = {
  columns,
  runs: P.runs,
  rates: P.rates,
  closedWindow: CLOSED_WINDOW,
  idleConnections: P.idle,
  hot: HOT,
};
const targets = renderTargets(results, shape);
const table = [
  `Benchmark ${meta.date} · ${meta.command} · ${meta.machine} · Bun ${meta.bun} · Centrifugo ${meta.centrifugo}`,
  `load average at start ${loadAtStart.join(" ")}, at end ${loadAtEnd.join(" ")} · ${P.runs === 1 ? "one run per figure" : `median (min–max) of ${P.runs} runs`} · git ${meta.git}`,
  ...(oursRoot ? [`ours from ${oursRoot}`] : []),
  ...(baselineRoot ? [`ours before from ${baselineRoot}`] : []),
  "",
  renderTable(results, shape),
  ...(targets ? ["", targets] : []),
].join("\n");
console.log(table);

const outDir = join(ROOT, "bench/results");
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `${meta.date.replaceAll(":", "-")}${quick ? "-quick" : ""}.json`);
const json = JSON.stringify({ meta, table, results }, null, 2);
writeFileSync(file, json);
writeFileSync(join(outDir, "latest.json"), json);
console.log(`\nwritten ${file}`);
