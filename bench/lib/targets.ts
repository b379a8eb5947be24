import type { Column } from "./columns.ts";
import { phaseLabel, type ReportShape, type SuiteResults } from "./report.ts";

/**
 * Issue #13's targets read off one run: each target, ours FULL's measured value (medians) and
 * PASS/MISS. A target whose servers or phase did not run says so instead of passing.
 */

interface Check {
  target: string;
  measured: number | undefined;
  limit: number;
  /** true: measured ≤ limit passes; false: measured ≥ limit passes. */
  atMost: boolean;
  unit: string;
  /** Replaces PASS/MISS when the run cannot judge the target. */
  noVerdict?: string;
}

const show = (x: number, unit: string) =>
  unit === "×"
    ? `${x.toFixed(2)}×`
    : `${x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(2)}${unit}`;

export function renderTargets(res: SuiteResults, shape: ReportShape): string {
  const checks = [...chatChecks(res, shape), ...idleChecks(res, shape.idleConnections)];
  if (checks.length === 0) return "";
  const lines = checks.map((c) => {
    const bound = `${c.atMost ? "≤" : "≥"} ${show(c.limit, c.unit)}`;
    if (c.measured === undefined) return `| ${c.target} ${bound} | not run | – |`;
    if (c.noVerdict) return `| ${c.target} ${bound} | ${show(c.measured, c.unit)} | ${c.noVerdict} |`;
    const pass = c.atMost ? c.measured <= c.limit : c.measured >= c.limit;
    return `| ${c.target} ${bound} | ${show(c.measured, c.unit)} | ${pass ? "PASS" : "MISS"} |`;
  });
  return [
    "Targets (issue #13), ours FULL, medians:",
    "",
    "| target | measured | |",
    "|---|---|---|",
    ...lines,
  ].join("\n");
}

function chatChecks(res: SuiteResults, shape: ReportShape): Check[] {
  const chat = res.chat;
  if (!chat) return [];
  const med = (c: Column, phase: string, k: string) => chat[c]?.figures[phase]?.[k]?.median;
  const ratio = (a: Column, b: Column, phase: string, k: string) => {
    const x = med(a, phase, k);
    const y = med(b, phase, k);
    return x !== undefined && y !== undefined && y !== 0 ? x / y : undefined;
  };
  const label = (phase: string) => phaseLabel(phase, shape.closedWindow);
  const cpu = "cpu_us_per_msg";
  const out: Check[] = [];
  const vsBare: Array<[string, number]> = [
    ["closed", 1.5],
    ["open_10k", 2],
    ["open_25k", 2],
  ];
  for (const [phase, limit] of vsBare) {
    out.push({
      target: `CPU / msg ÷ bare, ${label(phase)}`,
      measured: ratio("ours_full", "bare", phase, cpu),
      limit,
      atMost: true,
      unit: "×",
    });
  }
  for (const [phase, limit] of [
    ["open_10k", 3],
    ["open_25k", 5],
  ] as const) {
    const measured = med("ours_full", phase, "p99_ms");
    out.push({ target: `p99, ${label(phase)}`, measured, limit, atMost: true, unit: " ms" });
  }
  for (const phase of ["open_10k", "open_25k", "open_50k"]) {
    const measured = ratio("ours_full", "centrifugo", phase, "p99_ms");
    out.push({ target: `p99 ÷ Centrifugo, ${label(phase)}`, measured, limit: 1.5, atMost: true, unit: "×" });
  }
  const all = ["closed", "open_10k", "open_25k", "open_50k"];
  for (const phase of all) {
    const measured = ratio("ours_full", "centrifugo", phase, cpu);
    out.push({
      target: `CPU / msg ÷ Centrifugo, ${label(phase)}`,
      measured,
      limit: 1,
      atMost: true,
      unit: "×",
    });
  }
  // "FULL within 10% of OFF": durability may cost at most a tenth more CPU per message.
  for (const phase of all) {
    const measured = ratio("ours_full", "ours_off", phase, cpu);
    out.push({
      target: `CPU / msg FULL ÷ OFF, ${label(phase)}`,
      measured,
      limit: 1.1,
      atMost: true,
      unit: "×",
    });
  }
  return out;
}

/** Connections #13's idle figures were measured with; fewer leave RSS to allocator noise. */
const IDLE_BASIS = 15_000;

/** "No worse than today": the figures #13 measured on main (3.1 KB, ~7.7k connects/s). */
function idleChecks(res: SuiteResults, connections: number): Check[] {
  const idle = res.idle?.ours_full?.figures;
  if (!res.idle) return [];
  const noVerdict =
    connections < IDLE_BASIS
      ? `– (${connections.toLocaleString("en-US")} connections; #13 measured ${IDLE_BASIS.toLocaleString("en-US")})`
      : undefined;
  return [
    {
      target: "idle RSS / connection",
      measured: idle?.rss_per_conn_kb?.median,
      limit: 3.1,
      atMost: true,
      unit: " KB",
      noVerdict,
    },
    {
      target: "connect rate",
      measured: idle?.connects_per_s?.median,
      limit: 7700,
      atMost: false,
      unit: "/s",
      noVerdict,
    },
  ];
}
