import type { ServerWebSocket } from "bun";

/**
 * A socket lives no longer than its newest token: when `exp` (plus the clock tolerance) passes
 * with no fresh `auth` frame, `onExpire` closes it (4001). One timer per socket, re-armed by
 * every accepted `auth` and cleared on close.
 */

export const TOKEN_EXPIRED_CLOSE = 4001;

/** Node's and Bun's timers disagree on their type; this is whatever setTimeout returns here. */
type Timer = ReturnType<typeof setTimeout>;

export function createExpiryTimers<S extends ServerWebSocket<{ expiryTimer?: Timer }>>(opts: {
  toleranceS: number;
  now: () => number;
  onExpire: (ws: S) => void;
}) {
  return {
    /** (Re)starts the socket's deadline; a token without `exp` sets none. */
    arm(ws: S, expiresAtS: number | undefined): void {
      clearTimeout(ws.data.expiryTimer);
      ws.data.expiryTimer = undefined;
      if (expiresAtS === undefined) return;
      const delay = Math.max(0, (expiresAtS + opts.toleranceS) * 1000 - opts.now());
      // setTimeout takes at most 2^31-1 ms (~24 days); longer tokens are re-armed on the way.
      const step = Math.min(delay, 2 ** 31 - 1);
      ws.data.expiryTimer = setTimeout(
        () => (step < delay ? this.arm(ws, expiresAtS) : opts.onExpire(ws)),
        step,
      );
    },

    disarm(ws: S): void {
      clearTimeout(ws.data.expiryTimer);
      ws.data.expiryTimer = undefined;
    },
  };
}
