import { expect, test } from "bun:test";
import { createLocalPresence, type LastSeenStore, PresenceTracker } from "../../src/domain/presence.ts";

/** The in-process view answers at once, so a socket's snapshot can share the write of `ready`. */

test("the local view's statusNow is what status resolves to, online and offline", async () => {
  const seen = new Map<number, number>();
  const store: LastSeenStore = {
    touchPresence: (userId, at) => void seen.set(userId, at),
    lastSeen: (userId) => seen.get(userId) ?? null,
  };
  let clock = 1_000;
  const presence = createLocalPresence(new PresenceTracker(), store, () => clock);
  expect(presence.statusNow?.(7)).toEqual({ online: false, lastSeen: null });
  expect(await presence.status(7)).toEqual({ online: false, lastSeen: null });
  presence.connected(7, clock);
  clock = 2_000;
  expect(presence.statusNow?.(7)).toEqual({ online: true, lastSeen: 2_000 });
  expect(await presence.status(7)).toEqual({ online: true, lastSeen: 2_000 });
  clock = 3_000;
  await presence.disconnected(7, clock);
  expect(presence.statusNow?.(7)).toEqual({ online: false, lastSeen: 3_000 });
  expect(await presence.status(7)).toEqual(presence.statusNow!(7));
});
