/** Reconnect delays: exponential, capped, with jitter. */

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 15_000, factor: 2 };

/**
 * "Equal jitter": half the delay is fixed, half random. After a server restart every client
 * reconnects at once; the random half spreads them out, the fixed half keeps a flapping server
 * from being hammered by a client that drew a near-zero delay.
 */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(opts.maxMs, opts.initialMs * opts.factor ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
