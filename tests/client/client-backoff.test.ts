import { expect, test } from "bun:test";
import { backoffDelay, DEFAULT_BACKOFF } from "../../src/client/backoff.ts";

const opts = { initialMs: 100, maxMs: 1000, factor: 2 };

test.each([
  // attempt, random, expected: half the capped ceiling is fixed, half is jitter
  [0, 0, 50],
  [0, 1, 100],
  [1, 0.5, 150],
  [3, 1, 800],
  [4, 0, 500],
  [4, 1, 1000],
  [50, 1, 1000],
  [-1, 1, 100],
])("attempt %d with random %d waits %d ms", (attempt, r, expected) => {
  expect(backoffDelay(attempt, opts, () => r)).toBe(expected);
});

test("the defaults never wait longer than 15 s", () => {
  expect(backoffDelay(1000, DEFAULT_BACKOFF, () => 1)).toBe(15_000);
});
