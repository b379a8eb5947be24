/**
 * What a caller can make the service spend on Django (issue #20, items 1 and 3), against the
 * real Django test site, which counts its calls: every upgrade attempt is charged per address
 * before any identity call and per user before the lesson checks; failed `auth` frames spend
 * the per-address failed-login budget and close their socket after a few.
 */
import { describe, expect, test } from "bun:test";
import { MAX_FAILED_AUTH_FRAMES } from "../../src/ws/session.ts";
import { type DjangoCalls, type DjangoLogin, djangoSite, socketsAs } from "../helpers/django.ts";
import { type RawAnswer, rawUpgrade } from "../helpers/hostile.ts";
import type { InProcessService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

const site = djangoSite();
const { chatService } = site;

const sum = (c: DjangoCalls) => Object.values(c).reduce((a, b) => a + b, 0);

/** `n` upgrade attempts, a few at a time (under the cap on upgrades in flight). */
async function attempts(
  svc: InProcessService,
  n: number,
  path: (i: number) => string,
  cookie: string,
): Promise<RawAnswer[]> {
  const port = Number(new URL(svc.url).port);
  const answers: RawAnswer[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      answers[i] = await rawUpgrade(port, path(i), { Cookie: cookie }, 15_000);
    }
  };
  await Promise.all(Array.from({ length: 5 }, worker));
  return answers;
}

const statuses = (answers: RawAnswer[]) => answers.map((a) => a.status);

/** A token Django refuses: right shape and user, wrong key. */
const forged = (userId: number) => mintToken(userId, { secret: "not-the-site-key-0123456789abcdef" });

function expect429(answer: RawAnswer, message: RegExp): void {
  expect(answer.status).toBe(429);
  expect(Number(answer.headers["retry-after"])).toBeGreaterThan(0);
  const body = JSON.parse(answer.body) as { error: { code: string; message: string } };
  expect(body.error.code).toBe("rate_limited");
  expect(body.error.message).toMatch(message);
}

describe("UPGRADES_PER_MIN_PER_USER: every attempt is charged before the lesson checks", () => {
  test("a student naming unknown lessons costs at most the budget in lesson lookups", async () => {
    const svc = await chatService("local", { UPGRADES_PER_MIN_PER_USER: "10" });
    const student: DjangoLogin = await site.django.login(15);
    await site.django.resetCalls();
    const answers = await attempts(
      svc,
      60,
      (i) => `/ws?lesson_id=${50_000 + i}&token=${student.access}`,
      student.cookie,
    );
    const calls = await site.django.calls();
    expect(statuses(answers).filter((s) => s === 404)).toHaveLength(10);
    for (const a of answers.filter((x) => x.status !== 404)) expect429(a, /by this user/);
    // Before: one lesson_detail call per attempt (60).
    expect(calls.lesson_detail).toBe(10);
    expect(calls.users).toBeLessThanOrEqual(1);
  });

  test("a mentor naming random students costs at most the budget in check-access calls", async () => {
    const svc = await chatService("local", { UPGRADES_PER_MIN_PER_USER: "10" });
    const mentor = await site.django.login(10);
    await site.django.resetCalls();
    const answers = await attempts(
      svc,
      60,
      (i) => `/ws?lesson_id=5&student_id=${60_000 + i}&token=${mentor.access}`,
      mentor.cookie,
    );
    expect(statuses(answers).filter((s) => s === 403)).toHaveLength(10);
    expect(statuses(answers).filter((s) => s === 429)).toHaveLength(50);
    expect((await site.django.calls()).check_access).toBe(10);
  });

  test("the budget is the user's own: another user of the same address still connects", async () => {
    const svc = await chatService("local", { UPGRADES_PER_MIN_PER_USER: "3" });
    const student = await site.django.login(16);
    const other = await site.django.login(15);
    const spent = await attempts(
      svc,
      5,
      (i) => `/ws?lesson_id=${70_000 + i}&token=${student.access}`,
      student.cookie,
    );
    // Five at a time: which attempts got the 429s depends on the order they arrived.
    expect(statuses(spent).sort()).toEqual([404, 404, 404, 429, 429]);
    const [sock] = await socketsAs(svc.url, other, "lesson_id=5", 1);
    sock!.close();
  });
});

describe("UPGRADES_PER_MIN_PER_ADDRESS: charged before any identity call", () => {
  test("once an address has spent it, its attempts cost Django nothing, valid token or not", async () => {
    const svc = await chatService("remote", {
      UPGRADES_PER_MIN_PER_ADDRESS: "8",
      UPGRADES_PER_MIN_PER_USER: "0",
      AUTH_FAILURES_PER_MIN: "0",
    });
    const mentor = await site.django.login(10);
    const first = await attempts(
      svc,
      8,
      (i) => `/ws?lesson_id=5&student_id=${80_000 + i}&token=${mentor.access}`,
      mentor.cookie,
    );
    expect(statuses(first).every((s) => s === 403)).toBe(true);
    await site.django.resetCalls();
    const tokens = await Promise.all(Array.from({ length: 10 }, () => forged(15)));
    const after = [
      ...(await attempts(svc, 10, (i) => `/ws?lesson_id=5&token=${tokens[i]}`, mentor.cookie)),
      ...(await attempts(
        svc,
        10,
        (i) => `/ws?lesson_id=5&student_id=${90_000 + i}&token=${mentor.access}`,
        mentor.cookie,
      )),
    ];
    for (const a of after) expect429(a, /from this address/);
    // Before: 10 users calls for the forged tokens and 10 check-access calls.
    expect(sum(await site.django.calls())).toBe(0);
  });
});

describe("auth frames spend the failed-login budget", () => {
  test(`400 forged auth frames over 10 sockets: each socket closes after ${MAX_FAILED_AUTH_FRAMES}, Django sees at most that many each`, async () => {
    const svc = await chatService("remote", { AUTH_FAILURES_PER_MIN: "1000" });
    const login = await site.django.login(15);
    const sockets = await socketsAs(svc.url, login, "lesson_id=5", 10);
    await site.django.resetCalls();
    const tokens = await Promise.all(Array.from({ length: 400 }, () => forged(15)));
    for (const [i, t] of tokens.entries()) sockets[i % 10]!.send({ type: "auth", token: t });
    const closes = await Promise.all(sockets.map((s) => s.closedWith(15_000)));
    for (const c of closes) expect(c).toEqual({ code: 1008, reason: "too many failed re-authentications" });
    for (const s of sockets) {
      expect(s.all("error").map((e) => e.code)).toEqual(Array(MAX_FAILED_AUTH_FRAMES).fill("unauthorized"));
    }
    // Before: 400 users calls.
    expect((await site.django.calls()).users).toBe(10 * MAX_FAILED_AUTH_FRAMES);
  });

  test("refused auth frames count against the address on REST and upgrades too", async () => {
    const svc = await chatService("remote", { AUTH_FAILURES_PER_MIN: "4" });
    const login = await site.django.login(16);
    const sockets = await socketsAs(svc.url, login, "lesson_id=5", 2);
    for (const s of sockets) {
      s.send({ type: "auth", token: await forged(16) });
      s.send({ type: "auth", token: await forged(16) });
    }
    for (const s of sockets) {
      await s.next((f) => f.type === "error", 10_000);
      await s.next((f) => f.type === "error", 10_000);
    }
    await site.django.resetCalls();
    // The budget of 4 is spent by the frames alone: the next failure-prone call is refused up front.
    const rest = await fetch(`${svc.url}/conversations`, {
      headers: { Authorization: `Bearer ${await forged(16)}`, Cookie: login.cookie },
    });
    expect(rest.status).toBe(429);
    expect(Number(rest.headers.get("retry-after"))).toBeGreaterThan(0);
    sockets[0]!.send({ type: "auth", token: await forged(16) });
    expect(await sockets[0]!.next("error", 10_000)).toMatchObject({ code: "rate_limited" });
    expect(sum(await site.django.calls())).toBe(0);
    expect(await sockets[0]!.closedWith(5000)).toMatchObject({ code: 1008 });
  });

  test("good auth frames spend nothing: a socket re-authenticates as often as it needs", async () => {
    const svc = await chatService("remote", { AUTH_FAILURES_PER_MIN: "1" });
    const login = await site.django.login(15);
    const [sock] = await socketsAs(svc.url, login, "lesson_id=5", 1);
    for (let i = 0; i < MAX_FAILED_AUTH_FRAMES + 2; i++) {
      sock!.send({ type: "auth", token: login.access });
      await sock!.next("auth_ok", 10_000);
    }
    expect(sock!.closed).toBeNull();
    sock!.close();
  });
});
