import { type Column, HEADERS, WORKLOAD_COLUMNS } from "./columns.ts";
import type { Figures, Stat } from "./stats.ts";

/**
 * The suite's printed output: one table with a column per server and ratio columns beside
 * them, then the issue #13 targets with the measured value and PASS/MISS, so a run is read
 * straight off the terminal.
 */

export interface SuiteResults {
  chat?: Partial<Record<Column, { figures: Record<string, Figures> }>>;
  idle?: Partial<Record<Column, { figures: Figures }>>;
  history?: { rows: number; columns: Partial<Record<Column, { figures: Figures }>> };
  outbox?: unknown;
}

export interface ReportShape {
  columns: Column[];
  runs: number;
  rates: number[];
  closedWindow: number;
  idleConnections: number;
  hot: number;
}

/** Numerator, denominator, header: shown when both servers ran. */
const RATIOS: Array<[Column, Column, string]> = [
  ["ours_full", "bare", "FULL ÷ bare"],
  ["ours_full", "centrifugo", "FULL ÷ Centrifugo"],
  ["ours_full", "ours_off", "FULL ÷ OFF"],
  ["ours_full", "ours_before", "FULL ÷ before"],
];

const fmt = (x: number) =>
  !Number.isFinite(x)
    ? "–"
    : Math.abs(x) >= 1000
      ? Math.round(x).toLocaleString("en-US")
      : Math.abs(x) >= 10
        ? x.toFixed(1)
        : x.toFixed(2);

const ratioOf = (a: Stat | undefined, b: Stat | undefined) =>
  a && b && b.median !== 0 ? a.median / b.median : undefined;

export const phaseLabel = (phase: string, closedWindow: number) =>
  phase === "closed"
    ? `closed loop (window ${closedWindow}/socket)`
    : `open loop ${phase.slice("open_".length)}/s offered`;

export const phasesOf = (rates: number[]) => ["closed", ...rates.map((r) => `open_${r / 1000}k`)];

function tableRows(res: SuiteResults, shape: ReportShape, ratios: typeof RATIOS): string[][] {
  const cell = (s: Stat | undefined) =>
    !s ? "–" : shape.runs === 1 ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
  const rows: string[][] = [];
  /** One figure across the columns; a column the workload does not have shows "-". */
  const row = (
    workload: string,
    label: string,
    name: string,
    statOf: (c: Column) => Stat | undefined,
    withRatios = true,
  ) => {
    const has = (c: Column) => WORKLOAD_COLUMNS[workload]?.includes(c) ?? false;
    const cells = shape.columns.map((c) => (has(c) ? cell(statOf(c)) : "-"));
    const rs = ratios.map(([a, b]) => {
      const r = withRatios && has(a) && has(b) ? ratioOf(statOf(a), statOf(b)) : undefined;
      return r === undefined ? "" : `${r.toFixed(2)}×`;
    });
    rows.push([label, name, ...cells, ...rs]);
  };
  if (res.chat) {
    const chat = res.chat;
    for (const phase of phasesOf(shape.rates)) {
      for (const [k, name] of CHAT_FIGURES) {
        const label = `1 chat, ${phaseLabel(phase, shape.closedWindow)}`;
        // The client's CPU says who set the pace; a ratio of it compares nothing.
        row("chat", label, name, (c) => chat[c]?.figures[phase]?.[k], k !== "client_cpu_pct");
      }
    }
  }
  if (res.idle) {
    const idle = res.idle;
    const label = `2 idle, ${shape.idleConnections.toLocaleString("en-US")} connections`;
    for (const [k, name] of IDLE_FIGURES) row("idle", label, name, (c) => idle[c]?.figures[k]);
  }
  if (res.history) {
    const h = res.history;
    const label = `3 history, page of 50 of ${shape.hot.toLocaleString("en-US")} among ${h.rows.toLocaleString("en-US")}`;
    for (const [k, name] of HISTORY_FIGURES) row("history", label, name, (c) => h.columns[c]?.figures[k]);
  }
  if (res.outbox !== undefined) rows.push(...outboxRows(res.outbox, shape.columns, ratios.length));
  return rows;
}

const CHAT_FIGURES: Array<[string, string]> = [
  ["msgs_per_s", "delivered msgs/s"],
  ["cpu_us_per_msg", "server CPU µs / delivered msg"],
  ["p50_ms", "p50 ms"],
  ["p99_ms", "p99 ms"],
  ["p999_ms", "p999 ms"],
  ["client_cpu_pct", "load generator CPU % (near 100: client-bound)"],
];
const IDLE_FIGURES: Array<[string, string]> = [
  ["rss_per_conn_kb", "RSS KB / connection"],
  ["connects_per_s", "connects/s"],
  ["cpu_us_per_connect", "server CPU µs / connect"],
];
const HISTORY_FIGURES: Array<[string, string]> = [
  ["req_per_s", "req/s"],
  ["p50_ms", "p50 ms"],
  ["p99_ms", "p99 ms"],
  ["cpu_us_per_req", "server CPU µs / req"],
];

/** bench/outbox.ts's own figures, in the ours_full column (it runs this checkout). */
function outboxRows(o: unknown, columns: Column[], ratioCount: number): string[][] {
  const ok = o as { exit?: number; result?: Record<string, number> } | string;
  const r = typeof ok === "object" && ok.exit === 0 ? ok.result : undefined;
  const label = r ? `4 outbox → MongoDB (FerretDB), ${r.backlog} backlog` : "4 outbox → MongoDB";
  const figures: Array<[string, string]> = r
    ? [
        ["drain time s", String(r.drain_s)],
        ["flush msgs/s", String(r.flush_per_s)],
        ["live ack p50 ms during drain", String(r.live_ack_p50_ms)],
        ["live ack p99 ms during drain", String(r.live_ack_p99_ms)],
      ]
    : [["flush rate", typeof o === "string" ? o : `failed: ${JSON.stringify(o).slice(0, 200)}`]];
  return figures.map(([name, value]) => [
    label,
    name,
    ...columns.map((c) => (c === "ours_full" ? value : "-")),
    ...Array<string>(ratioCount).fill(""),
  ]);
}

export function renderTable(res: SuiteResults, shape: ReportShape): string {
  const ratios = RATIOS.filter(([a, b]) => shape.columns.includes(a) && shape.columns.includes(b));
  const header = ["workload", "figure", ...shape.columns.map((c) => HEADERS[c]), ...ratios.map((r) => r[2])];
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...tableRows(res, shape, ratios).map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}
