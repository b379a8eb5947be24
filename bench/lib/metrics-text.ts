/** The server's `/metrics` page; empty when it cannot be read (an older build, a server gone). */
export async function readMetrics(httpUrl: string): Promise<string> {
  return fetch(`${httpUrl}/metrics`).then(
    (r) => (r.ok ? r.text() : ""),
    () => "",
  );
}

/** One series' value in a Prometheus text page (`/metrics`): labels included in `series`; NaN when absent. */
export function metricValue(text: string, series: string): number {
  const prefix = `${series} `;
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(prefix.length)) : Number.NaN;
}
