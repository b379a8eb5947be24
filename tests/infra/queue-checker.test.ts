import { describe, expect, test } from "bun:test";
import { checkQueue, type QueueHistory } from "../helpers/queue-checker.ts";

interface Case {
  name: string;
  history: QueueHistory;
  expect: { lost: string[]; duplicated: string[]; unexpected: string[]; recovered: string[]; ok: boolean };
}

const cases: Case[] = [
  {
    name: "empty history is ok",
    history: { sent: [], acked: [], stored: [] },
    expect: { lost: [], duplicated: [], unexpected: [], recovered: [], ok: true },
  },
  {
    name: "everything acked and stored once",
    history: { sent: ["a", "b", "c"], acked: ["a", "b", "c"], stored: ["c", "a", "b"] },
    expect: { lost: [], duplicated: [], unexpected: [], recovered: [], ok: true },
  },
  {
    name: "acked but missing is lost",
    history: { sent: ["a", "b", "c"], acked: ["a", "b", "c"], stored: ["a", "c"] },
    expect: { lost: ["b"], duplicated: [], unexpected: [], recovered: [], ok: false },
  },
  {
    name: "unacked and missing is not lost (the write may legitimately have failed)",
    history: { sent: ["a", "b"], acked: ["a"], stored: ["a"] },
    expect: { lost: [], duplicated: [], unexpected: [], recovered: [], ok: true },
  },
  {
    name: "unacked but stored is recovered, still ok",
    history: { sent: ["a", "b"], acked: ["a"], stored: ["a", "b"] },
    expect: { lost: [], duplicated: [], unexpected: [], recovered: ["b"], ok: true },
  },
  {
    name: "stored twice is duplicated",
    history: { sent: ["a", "b"], acked: ["a", "b"], stored: ["a", "b", "a"] },
    expect: { lost: [], duplicated: ["a"], unexpected: [], recovered: [], ok: false },
  },
  {
    name: "stored but never sent is unexpected",
    history: { sent: ["a"], acked: ["a"], stored: ["a", "zz"] },
    expect: { lost: [], duplicated: [], unexpected: ["zz"], recovered: [], ok: false },
  },
  {
    name: "duplicate acks and sends (client retries) count once",
    history: { sent: ["a", "a", "b"], acked: ["a", "a"], stored: ["a"] },
    expect: { lost: [], duplicated: [], unexpected: [], recovered: [], ok: true },
  },
  {
    name: "all anomalies at once, reported sorted",
    history: {
      sent: ["m1", "m2", "m3", "m4", "m5"],
      acked: ["m5", "m1", "m2", "m3"],
      stored: ["m3", "x9", "m3", "m1", "m4", "x1"],
    },
    expect: {
      lost: ["m2", "m5"],
      duplicated: ["m3"],
      unexpected: ["x1", "x9"],
      recovered: ["m4"],
      ok: false,
    },
  },
];

describe("checkQueue", () => {
  test.each(cases)("$name", ({ history, expect: want }) => {
    const got = checkQueue(history);
    expect({
      lost: got.lost,
      duplicated: got.duplicated,
      unexpected: got.unexpected,
      recovered: got.recovered,
      ok: got.ok,
    }).toEqual(want);
  });

  test("counts reflect distinct ids and raw stored copies", () => {
    const got = checkQueue({ sent: ["a", "b", "c"], acked: ["a", "b"], stored: ["a", "a", "c"] });
    expect(got.counts).toEqual({
      sent: 3,
      acked: 2,
      stored: 3,
      storedDistinct: 2,
      lost: 1,
      duplicated: 1,
      unexpected: 0,
      recovered: 1,
    });
  });

  test("does not mutate its inputs", () => {
    const history = { sent: ["b", "a"], acked: ["b", "a"], stored: ["b"] };
    const snapshot = structuredClone(history);
    checkQueue(history);
    expect(history).toEqual(snapshot);
  });
});
