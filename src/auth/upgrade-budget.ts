import { KeyedBuckets } from "../domain/rate.ts";
import { AppError } from "../errors.ts";

/**
 * What a WebSocket upgrade attempt may cost before it is refused. Refused attempts cost Django
 * calls too (the lesson, the enrollment), so every attempt is charged, not just the ones that
 * open a socket: per client address before any identity call, and per user once the token
 * names one, before the lesson and enrollment checks. A reconnect loop spends its own user's
 * budget, never anyone else's.
 */
export interface UpgradeBudget {
  /** Charges one attempt to `ip`; throws 429 (with Retry-After) when its budget is spent. */
  chargeAddress(ip: string): void;
  /** Charges one attempt to `userId`; throws 429 (with Retry-After) when its budget is spent. */
  chargeUser(userId: number): void;
}

/** A per-minute budget with a burst of the same size; 0 turns it off. */
function perMinute(limit: number, what: string): (key: string) => void {
  if (limit <= 0) return () => {};
  const buckets = new KeyedBuckets(limit / 60, limit);
  return (key) => {
    const { ok, retryAfterS } = buckets.take(key);
    if (!ok)
      throw new AppError(429, "rate_limited", `too many connection attempts ${what}; wait`, retryAfterS);
  };
}

export function createUpgradeBudget(perUserPerMin: number, perAddressPerMin: number): UpgradeBudget {
  const user = perMinute(perUserPerMin, "by this user");
  const address = perMinute(perAddressPerMin, "from this address");
  return {
    chargeAddress: address,
    chargeUser: (userId) => user(String(userId)),
  };
}
