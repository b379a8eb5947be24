/**
 * The servers a suite run compares, one table column each. `--servers` picks a subset (a quick
 * comparison need not start Centrifugo); `--baseline-root` adds `ours_before`.
 */

export const COLUMNS = ["ours_full", "ours_off", "ours_before", "bare", "centrifugo"] as const;
export type Column = (typeof COLUMNS)[number];

export const HEADERS: Record<Column, string> = {
  ours_full: "ours, FULL",
  ours_off: "ours, OFF",
  ours_before: "ours before, FULL",
  bare: "bare Bun.serve",
  centrifugo: "Centrifugo",
};

export const DEFAULT_COLUMNS: readonly Column[] = ["ours_full", "ours_off", "bare", "centrifugo"];

/**
 * Which columns each workload has. Idle skips `ours_off` (connecting writes once per
 * conversation, so it would repeat `ours_full`); history and the outbox need a store.
 */
export const WORKLOAD_COLUMNS: Record<string, readonly Column[]> = {
  chat: COLUMNS,
  idle: ["ours_full", "ours_before", "bare", "centrifugo"],
  history: ["ours_full", "ours_before"],
  outbox: ["ours_full"],
};

/** `--servers` (comma-separated, any order) as columns in table order; unknown names throw. */
export function selectColumns(servers: string | undefined, baselineRoot: string | undefined): Column[] {
  const asked = servers
    ? servers
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : DEFAULT_COLUMNS;
  const unknown = asked.filter((a) => !(COLUMNS as readonly string[]).includes(a));
  if (unknown.length > 0) {
    throw new Error(`--servers: unknown ${unknown.join(", ")}; choose from ${COLUMNS.join(", ")}`);
  }
  const chosen = new Set(asked as Column[]);
  if (baselineRoot) chosen.add("ours_before");
  else if (chosen.has("ours_before")) throw new Error("--servers ours_before needs --baseline-root <dir>");
  if (chosen.size === 0) throw new Error("--servers: name at least one server");
  return COLUMNS.filter((c) => chosen.has(c));
}

export const runsIn = (workload: string, columns: readonly Column[]): Column[] =>
  columns.filter((c) => WORKLOAD_COLUMNS[workload]?.includes(c));
