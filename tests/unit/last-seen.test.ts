import { describe, expect, test } from "bun:test";
import { lastSeenVia } from "../../src/open-storage.ts";
import { createGroupCommitter } from "../../src/store/group-commit.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { tempDir } from "../helpers/service.ts";

/**
 * Last-seen times ride along with the group commit. Touches of one user that come before their
 * queued write runs (several tabs opening, a reconnect) make one row write with the newest
 * time; reads see the newest time before and after it is durable; a touch after the write ran
 * queues another; a failed commit leaves nothing stuck.
 */

function setup(failedCommits = 0) {
  let failing = failedCommits;
  const dir = tempDir("last-seen-");
  const store = openStore({ path: `${dir.path}/chat.db` });
  const writes: Array<[number, number]> = [];
  const committer = createGroupCommitter({
    transaction: (fn) => {
      if (failing-- > 0) throw new Error("disk full");
      return store.transaction(fn);
    },
  });
  const lastSeen = lastSeenVia(
    {
      touchPresence: (userId, at) => {
        writes.push([userId, at]);
        store.touchPresence(userId, at);
      },
      lastSeen: store.lastSeen,
    },
    committer,
  );
  const close = async () => {
    await committer.drain();
    store.close();
    dir.remove();
  };
  return { store, lastSeen, writes, committer, close };
}

describe("last-seen writes", () => {
  test("touches before the write runs make one write of the newest time; reads agree throughout", async () => {
    const t = setup();
    for (let at = 1000; at <= 1014; at++) t.lastSeen.touchPresence(7, at);
    t.lastSeen.touchPresence(8, 2000);
    expect(t.lastSeen.lastSeen(7)).toBe(1014);
    await t.committer.submit(() => undefined);
    expect(t.writes).toEqual([
      [7, 1014],
      [8, 2000],
    ]);
    expect(t.store.lastSeen(7)).toBe(1014);
    expect(t.lastSeen.lastSeen(7)).toBe(1014);

    // After the write ran, a touch queues another.
    t.lastSeen.touchPresence(7, 3000);
    expect(t.lastSeen.lastSeen(7)).toBe(3000);
    await t.committer.submit(() => undefined);
    expect(t.writes.at(-1)).toEqual([7, 3000]);
    expect(t.store.lastSeen(7)).toBe(3000);
    await t.close();
  });

  test("a commit that fails before the write runs does not leave the user's writes stuck", async () => {
    const t = setup(1);
    t.lastSeen.touchPresence(7, 1000);
    await t.committer.submit(() => undefined).catch(() => undefined);
    expect(t.writes).toEqual([]);
    t.lastSeen.touchPresence(7, 2000);
    await t.committer.submit(() => undefined);
    expect(t.writes).toEqual([[7, 2000]]);
    expect(t.store.lastSeen(7)).toBe(2000);
    await t.close();
  });
});
