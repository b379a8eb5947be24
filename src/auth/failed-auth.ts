import { KeyedBuckets } from "../domain/rate.ts";
import { AppError } from "../errors.ts";

/**
 * A per-address budget of failed logins (401s), shared by REST and the WebSocket upgrade.
 * Checking a forged token is cheap with JWT_SECRET, but without it every unknown token costs
 * a call to Django: an address that keeps failing is refused with 429 before it costs one.
 * Successful logins never spend the budget.
 */
export interface FailedAuthGuard {
  /** Throws 429 (with Retry-After) while `ip` has spent its budget. */
  check(ip: string): void;
  /** Counts one failure against `ip`. */
  failed(ip: string): void;
  /** Runs `authenticate`, counting a 401 it throws against `ip`. */
  guard<T>(ip: string, authenticate: () => Promise<T>): Promise<T>;
}

export function createFailedAuthGuard(perMinute: number): FailedAuthGuard {
  // 0 turns the guard off, e.g. behind a proxy that makes every client one address.
  if (perMinute <= 0) {
    return { check() {}, failed() {}, guard: (_ip, authenticate) => authenticate() };
  }
  const buckets = new KeyedBuckets(perMinute / 60, perMinute);
  const self: FailedAuthGuard = {
    check(ip) {
      const wait = buckets.waitS(ip);
      if (wait > 0) {
        throw new AppError(429, "rate_limited", "too many failed logins from this address; wait", wait);
      }
    },
    failed(ip) {
      buckets.take(ip);
    },
    async guard(ip, authenticate) {
      self.check(ip);
      try {
        return await authenticate();
      } catch (err) {
        if (err instanceof AppError && err.status === 401) self.failed(ip);
        throw err;
      }
    },
  };
  return self;
}
