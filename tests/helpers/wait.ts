/**
 * The one poll-until helper of the tests. `probe` is called until it returns a value other than
 * `false`, `undefined` or `null`, and that value is returned; a probe that throws counts as "not yet"
 * (the last error is shown if time runs out). On timeout it fails with what it waited for.
 */

export interface WaitOptions {
  /** What the test is waiting for, in words: "the outbox to drain into MongoDB". */
  message: string;
  /** 15 s unless told. */
  timeoutMs?: number;
  /** Pause between probes; 50 ms unless told. */
  intervalMs?: number;
}

type NotYet = false | undefined | null;

export async function waitUntil<T>(
  probe: () => T | NotYet | Promise<T | NotYet>,
  { message, timeoutMs = 15_000, intervalMs = 50 }: WaitOptions,
): Promise<T> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let lastError: unknown;
  let probes = 0;
  for (;;) {
    probes++;
    try {
      const v = await probe();
      if (v !== false && v !== undefined && v !== null) return v as T;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError === undefined ? "" : `; the last probe threw: ${String(lastError)}`;
      throw new Error(
        `timed out after ${Date.now() - started} ms (${probes} probes) waiting for ${message}${why}`,
      );
    }
    await Bun.sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}
