import type { ServerWebSocket } from "bun";

/**
 * A socket lives no longer than its newest token: when `exp` (plus the clock tolerance) passes
 * with no fresh `auth` frame, `onExpire` closes it (4001). Every accepted `auth` re-arms it and
 * close disarms it.
 *
 * Sockets are kept by the second their deadline falls in, and one 1-second tick runs while any
 * is armed: a timer per socket was ~0.9 KB of each idle connection's memory (docs/performance-log.md).
 * A socket closes within a second after its deadline.
 */

export const TOKEN_EXPIRED_CLOSE = 4001;

const TICK_MS = 1000;

export function createExpiryTimers<S extends ServerWebSocket<{ deadlineS?: number }>>(opts: {
  toleranceS: number;
  now: () => number;
  onExpire: (ws: S) => void;
}) {
  const due = new Map<number, Set<S>>();
  let tick: ReturnType<typeof setInterval> | undefined;

  const expire = () => {
    const nowS = opts.now() / 1000;
    // One socket's failure must not spare the others (each had a timer of its own before).
    let failure: { err: unknown } | undefined;
    for (const [second, sockets] of due) {
      if (second > nowS) continue;
      due.delete(second);
      for (const ws of sockets) {
        ws.data.deadlineS = undefined;
        try {
          opts.onExpire(ws);
        } catch (err) {
          failure ??= { err };
        }
      }
    }
    if (due.size === 0) {
      clearInterval(tick);
      tick = undefined;
    }
    if (failure) throw failure.err;
  };

  const disarm = (ws: S): void => {
    const second = ws.data.deadlineS;
    if (second === undefined) return;
    ws.data.deadlineS = undefined;
    const sockets = due.get(second);
    sockets?.delete(ws);
    if (sockets?.size === 0) due.delete(second);
  };

  return {
    /** (Re)starts the socket's deadline; a token without `exp` sets none. */
    arm(ws: S, expiresAtS: number | undefined): void {
      disarm(ws);
      if (expiresAtS === undefined) return;
      const second = Math.ceil(expiresAtS + opts.toleranceS);
      ws.data.deadlineS = second;
      const sockets = due.get(second);
      if (sockets) sockets.add(ws);
      else due.set(second, new Set([ws]));
      if (tick === undefined) {
        tick = setInterval(expire, TICK_MS);
        // Sockets keep the process alive; this tick alone must not.
        tick.unref?.();
      }
    },

    disarm,

    /** Sockets with a deadline (for tests). */
    get armed(): number {
      let n = 0;
      for (const sockets of due.values()) n += sockets.size;
      return n;
    },
  };
}
