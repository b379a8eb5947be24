/** Equal jitter: never less than half the step (no busy loop), never in lockstep with a peer. */
export function backoffMs(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return step / 2 + random() * (step / 2);
}
