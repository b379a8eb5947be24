import { expect, test } from "bun:test";
import { createObjectIdGenerator } from "../../src/ids.ts";

// Resume is `since=<last id>`, so ids made after a restart must sort after the stored ones,
// even when both processes started within the same wall-clock second.
test("ids made after a same-second restart sort after the newest stored id", () => {
  for (let round = 0; round < 200; round++) {
    const t = 1_700_000_000_000;
    const before = createObjectIdGenerator(() => t);
    const stored = [before(), before()];
    const after = createObjectIdGenerator(() => t + 300, stored[1]);
    expect(after() > stored[1]!).toBe(true);
    expect(stored[1]! > stored[0]!).toBe(true);
  }
});

test("without stored ids the timestamp is the clock's", () => {
  const t = 1_700_000_000_000;
  expect(createObjectIdGenerator(() => t)().slice(0, 8)).toBe((t / 1000).toString(16));
  const old = createObjectIdGenerator(() => t - 60_000)();
  expect(createObjectIdGenerator(() => t, old)().slice(0, 8)).toBe((t / 1000).toString(16));
});
