import { describe, expect, test } from "bun:test";
import type { ServerWebSocket } from "bun";
import { createExpiryTimers } from "../../src/ws/expiry.ts";

/**
 * Token deadlines without a timer per socket (ws/expiry.ts): sockets by deadline second, one
 * tick while any is armed. The socket here is only its `data`, which is all the schedule reads.
 */

type Sock = ServerWebSocket<{ deadlineS?: number; name: string }>;
const sock = (name: string) => ({ data: { name } }) as unknown as Sock;

describe("token deadlines", () => {
  test("each socket expires once, after its own deadline; re-arming moves it, disarming drops it, nothing is left", async () => {
    let nowMs = 1_000_000_000_000;
    const expired: string[] = [];
    const expiry = createExpiryTimers<Sock>({
      toleranceS: 1,
      now: () => nowMs,
      onExpire: (ws) => expired.push(ws.data.name),
    });
    const base = nowMs / 1000;
    const many = Array.from({ length: 1000 }, (_, i) => sock(`s${i}`));
    for (const ws of many) expiry.arm(ws, base + 5);
    const moved = sock("moved");
    expiry.arm(moved, base + 5);
    expiry.arm(moved, base + 60);
    const closed = sock("closed");
    expiry.arm(closed, base + 5);
    expiry.disarm(closed);
    expiry.arm(sock("no-exp"), undefined);
    expect(expiry.armed).toBe(1001);

    nowMs += 5_500; // past exp, not past the tolerance
    await Bun.sleep(1100);
    expect(expired).toEqual([]);
    nowMs += 1_000;
    await Bun.sleep(1100);
    expect(expired.length).toBe(1000);
    expect(new Set(expired).size).toBe(1000);
    expect(expired).not.toContain("moved");
    expect(expired).not.toContain("closed");
    expect(expiry.armed).toBe(1);

    expiry.disarm(moved);
    expect(expiry.armed).toBe(0);
    nowMs += 120_000;
    await Bun.sleep(1100);
    expect(expired.length).toBe(1000);
  });
});
