/** One series' value in a Prometheus text page (`/metrics`): labels included in `series`; NaN when absent. */
export function metricValue(text: string, series: string): number {
  const prefix = `${series} `;
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(prefix.length)) : Number.NaN;
}
