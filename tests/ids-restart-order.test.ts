import { expect, test } from "bun:test";
import { createObjectIdGenerator } from "../src/ids.ts";

// Resume is `since=<last id>`, so ids made after a restart must sort after the old process's,
// even when the restart happens within the same wall-clock second.
test("a generator started after another stopped makes larger ids, within the same second too", () => {
  for (let round = 0; round < 200; round++) {
    let t = 1_700_000_000_000;
    const before = createObjectIdGenerator(() => t);
    t += 1500; // the old process ran for a while
    const oldIds = [before(), before()];
    t += 300; // restarted, still inside the same second as its last ids
    const after = createObjectIdGenerator(() => t);
    const newId = after();
    expect(newId > oldIds[1]!).toBe(true);
    expect(oldIds[1]! > oldIds[0]!).toBe(true);
  }
});
