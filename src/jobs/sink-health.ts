import type { Registry } from "../metrics.ts";

/**
 * What a handler reports about its sink beside its counters: when the sink last confirmed
 * something (a gauge in seconds since the epoch, 0 for never since start), and the error of the
 * last pass, which a pass that succeeded clears. Both also go into the handler's status.
 */
export function sinkHealth(registry: Registry, gauge: { name: string; help: string }, now: () => number) {
  let lastAt: number | null = null;
  let lastError: string | undefined;
  registry.gauge(gauge.name, gauge.help, () => (lastAt === null ? 0 : lastAt / 1000));
  return {
    confirmed(): void {
      lastAt = now();
    },
    failed(error: string): void {
      lastError = error;
    },
    succeeded(): void {
      lastError = undefined;
    },
    get failing(): boolean {
      return lastError !== undefined;
    },
    lastAtIso(): string | null {
      return lastAt === null ? null : new Date(lastAt).toISOString();
    },
    /** `last_error`, for a status, while there is one. */
    errorField(): { last_error?: string } {
      return lastError ? { last_error: lastError } : {};
    },
  };
}
