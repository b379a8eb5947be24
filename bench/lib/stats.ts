/** A figure over the suite's runs: the median is what the table and the targets read. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: s[Math.floor((s.length - 1) / 2)] ?? Number.NaN,
    min: s[0] ?? Number.NaN,
    max: s.at(-1) ?? Number.NaN,
    runs: xs,
  };
}

/** One workload's figures: figure name → its runs. */
export type Figures = Record<string, Stat>;

/** The same figure names over every run of `raw`. */
export function figuresOf<T>(raw: T[], keys: readonly (keyof T & string)[]): Figures {
  return Object.fromEntries(keys.map((k) => [k, stat(raw.map((x) => Number(x[k])))]));
}
