import { describe, expect, test } from "bun:test";
import { lastSeenVia } from "../../src/open-storage.ts";
import { createGroupCommitter } from "../../src/store/group-commit.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import { tempDir } from "../helpers/service.ts";

/**
 * Last-seen times gather for a moment and one commit writes them, each user's newest once;
 * reads see the newest time before and after it is written; `flush` (shutdown) writes at once;
 * a failed commit leaves nothing stuck.
 */

function setup(opts: { failedCommits?: number; delayMs?: number } = {}) {
  let failing = opts.failedCommits ?? 0;
  let commits = 0;
  const dir = tempDir("last-seen-");
  const store = openStore({ path: `${dir.path}/chat.db` });
  const writes: Array<[number, number]> = [];
  const committer = createGroupCommitter({
    transaction: (fn) => {
      commits++;
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
    opts.delayMs ?? 60_000,
  );
  const close = async () => {
    await committer.drain();
    store.close();
    dir.remove();
  };
  return { store, lastSeen, writes, commits: () => commits, close };
}

describe("last-seen writes", () => {
  test("touches within the delay make one commit of each user's newest time; reads agree throughout", async () => {
    const t = setup({ delayMs: 50 });
    for (let at = 1000; at <= 1014; at++) t.lastSeen.touchPresence(7, at);
    t.lastSeen.touchPresence(8, 2000);
    expect(t.lastSeen.lastSeen(7)).toBe(1014);
    await Bun.sleep(20);
    expect(t.writes).toEqual([]);
    expect(t.lastSeen.lastSeen(7)).toBe(1014);
    await Bun.sleep(100);
    expect(t.writes).toEqual([
      [7, 1014],
      [8, 2000],
    ]);
    expect(t.commits()).toBe(1);
    expect(t.store.lastSeen(7)).toBe(1014);
    expect(t.lastSeen.lastSeen(7)).toBe(1014);

    // After that write, a touch starts another delay.
    t.lastSeen.touchPresence(7, 3000);
    expect(t.lastSeen.lastSeen(7)).toBe(3000);
    await Bun.sleep(120);
    expect(t.writes.at(-1)).toEqual([7, 3000]);
    expect(t.commits()).toBe(2);
    expect(t.store.lastSeen(7)).toBe(3000);
    await t.close();
  });

  test("flush writes what waits at once, and waits for it", async () => {
    const t = setup();
    t.lastSeen.touchPresence(7, 1000);
    await t.lastSeen.flush();
    expect(t.writes).toEqual([[7, 1000]]);
    expect(t.store.lastSeen(7)).toBe(1000);
    await t.lastSeen.flush(); // nothing waits: no commit
    expect(t.commits()).toBe(1);
    await t.close();
  });

  test("a commit that fails does not leave the user's writes stuck", async () => {
    const t = setup({ failedCommits: 1 });
    t.lastSeen.touchPresence(7, 1000);
    await t.lastSeen.flush();
    expect(t.writes).toEqual([]);
    t.lastSeen.touchPresence(7, 2000);
    await t.lastSeen.flush();
    expect(t.writes).toEqual([[7, 2000]]);
    expect(t.store.lastSeen(7)).toBe(2000);
    await t.close();
  });
});
