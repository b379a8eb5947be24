/**
 * The chat service against a real Django site (tests/django: DRF + SimpleJWT + the one-device
 * cookie rule), in both verification modes: tokens checked locally with the site's key
 * (JWT_SECRET) before any network call, and tokens proven by Django alone.
 *
 * Cast (DJANGO_CAST): mentor 10 teaches lessons 5 and 7 (course 1), mentor 11 lesson 6
 * (course 2); students 15, 16 active in course 1, 17 inactive there, 18 enrolled nowhere,
 * 19 active in course 2. Every `login()` replaces that user's device cookie.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { decodeJwt, SignJWT } from "jose";
import { type DjangoCalls, type DjangoLogin, djangoSite } from "../helpers/django.ts";
import { type RawAnswer, rawUpgrade } from "../helpers/hostile.ts";
import type { InProcessService } from "../helpers/service.ts";
import { TestSocket } from "../helpers/ws-client.ts";

const TIMEOUT_MS = 1000;

/** What Django says when it refuses; none of it may reach a chat client. */
const DJANGO_WORDS = [
  "Given token not valid",
  "token_not_valid",
  "Unknown device_id",
  "logged in on another device",
  "Missing device_id cookie",
  "device_missing",
  "device_mismatch",
  "not enrolled in this course",
  "enrollment is not active",
  "Not found.",
  "Authentication credentials were not provided",
  "detail",
];

const site = djangoSite({
  DJANGO_TIMEOUT_MS: String(TIMEOUT_MS),
  // Refusals in bulk are the point here; the failed-login budget has its own tests.
  AUTH_FAILURES_PER_MIN: "0",
  MAX_CONNECTIONS_PER_USER: "100",
  UPGRADES_PER_MIN_PER_USER: "0",
  UPGRADES_PER_MIN_PER_ADDRESS: "0",
  RATE_REST_PER_MIN: "100000",
});
const { chatService } = site;

function wsQuery(token: string, query: Record<string, number>): string {
  const params = new URLSearchParams({ token });
  for (const [k, v] of Object.entries(query)) params.set(k, String(v));
  return `/ws?${params}`;
}

function open(svc: InProcessService, login: DjangoLogin, query: Record<string, number>): Promise<TestSocket> {
  return TestSocket.open(`${svc.url.replace("http", "ws")}${wsQuery(login.access, query)}`, {
    headers: { Cookie: `theme=dark; ${login.cookie}; sessionid=unrelated` },
  });
}

/** A refused upgrade, read off the wire: status and body. */
function upgrade(
  svc: InProcessService,
  token: string,
  query: Record<string, number>,
  cookie?: string,
): Promise<RawAnswer> {
  return rawUpgrade(Number(new URL(svc.url).port), wsQuery(token, query), cookie ? { Cookie: cookie } : {});
}

async function rest(
  svc: InProcessService,
  path: string,
  token: string,
  cookie?: string,
): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (cookie) headers.Cookie = cookie;
  const res = await fetch(`${svc.url}${path}`, { headers });
  return { status: res.status, body: await res.text() };
}

function expectRefusal(answer: { status: number; body: string }, status: number, message: RegExp): void {
  expect(answer.status).toBe(status);
  const body = JSON.parse(answer.body) as { error: { code: string; message: string } };
  expect(body.error.message).toMatch(message);
  for (const words of DJANGO_WORDS) expect(answer.body).not.toContain(words);
}

/** A fresh access token for the same login and device (SimpleJWT's refresh endpoint). */
async function refreshed(login: DjangoLogin): Promise<string> {
  const res = await fetch(`${site.django.baseUrl}/api/token/refresh/`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh: login.refresh }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access: string }).access;
}

function mint(claims: Record<string, unknown>, expOffsetS: number, secret = site.django.secretKey) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ token_type: "access", jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now - 1000)
    .setExpirationTime(now + expOffsetS)
    .sign(new TextEncoder().encode(secret));
}

/** The same token with another payload and the old signature. */
function tampered(token: string, change: Record<string, unknown>): string {
  const [header, , signature] = token.split(".");
  const payload = { ...decodeJwt(token), ...change };
  return `${header}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${signature}`;
}

const sum = (c: DjangoCalls) => c.users + c.lesson_detail + c.check_access;

async function chatRoundTrip(a: TestSocket, b: TestSocket, text: string): Promise<void> {
  const clientId = text.replace(/[^\w.:-]/g, "_");
  a.send({ type: "message", text, client_id: clientId });
  await a.next((f) => f.type === "ack" && f.client_id === clientId);
  await b.next((f) => f.type === "message" && f.text === text);
}

for (const mode of ["local", "remote"] as const) {
  describe(`tokens ${mode === "local" ? "verified locally with JWT_SECRET" : "proven by Django alone"}`, () => {
    let svc: InProcessService;

    beforeAll(async () => {
      svc = await chatService(mode);
    });

    test("the mentor and an enrolled student chat; REST shows the conversation", async () => {
      const mentor = await site.django.login(10);
      const student = await site.django.login(15);
      const s = await open(svc, student, { lesson_id: 5 });
      const m = await open(svc, mentor, { lesson_id: 5, student_id: 15, user_id: 10 });
      const ready = await s.next("ready");
      expect(ready).toMatchObject({ user_id: 15, mentor_id: 10, student_id: 15, lesson_id: 5 });
      expect((await m.next("ready")).conversation_id).toBe(ready.conversation_id);
      await chatRoundTrip(s, m, `hello mentor ${mode}`);
      await chatRoundTrip(m, s, `hello student ${mode}`);

      const list = await rest(svc, "/conversations", student.access, student.cookie);
      expect(list.status).toBe(200);
      expect(JSON.parse(list.body)).toContainEqual(expect.objectContaining({ id: ready.conversation_id }));
      const msgs = await rest(
        svc,
        `/messages?conversation_id=${ready.conversation_id}`,
        mentor.access,
        mentor.cookie,
      );
      expect(msgs.status).toBe(200);
      expect(JSON.parse(msgs.body).map((x: { text: string }) => x.text)).toContain(`hello mentor ${mode}`);
      expectRefusal(
        await rest(svc, "/conversations?user_id=16", student.access, student.cookie),
        403,
        /user_id/,
      );
      s.close();
      m.close();
    });

    test("who may not open a conversation is refused, with our words only", async () => {
      const [m10, m11, s15, s17, s18] = await Promise.all([
        site.django.login(10),
        site.django.login(11),
        site.django.login(15),
        site.django.login(17),
        site.django.login(18),
      ]);
      const cases: Array<[string, DjangoLogin, Record<string, number>, number, RegExp]> = [
        ["unenrolled student", s18, { lesson_id: 5 }, 403, /not enrolled/],
        ["inactive student", s17, { lesson_id: 5 }, 403, /not enrolled/],
        ["mentor of another lesson", m11, { lesson_id: 5, student_id: 15 }, 403, /do not teach/],
        ["mentor naming an unenrolled student", m10, { lesson_id: 5, student_id: 18 }, 403, /student 18/],
        ["mentor naming a student of another course", m10, { lesson_id: 5, student_id: 19 }, 403, /19/],
        ["student naming another student", s15, { lesson_id: 5, student_id: 16 }, 403, /own/],
        ["user_id that is not the token's", s15, { lesson_id: 5, user_id: 16 }, 403, /user_id/],
        ["a lesson that does not exist", s15, { lesson_id: 999 }, 404, /999/],
      ];
      for (const [name, login, query, status, message] of cases) {
        const answer = await upgrade(svc, login.access, query, login.cookie);
        expect({ name, status: answer.status }).toEqual({ name, status });
        expectRefusal(answer, status, message);
      }
    });

    test("expired and refresh tokens never reach Django", async () => {
      const login = await site.django.login(15);
      const expired = await mint({ user_id: 15 }, -120);
      await site.django.resetCalls();
      expectRefusal(await upgrade(svc, expired, { lesson_id: 5 }, login.cookie), 401, /expired/);
      expectRefusal(await rest(svc, "/conversations", expired, login.cookie), 401, /expired/);
      expectRefusal(await upgrade(svc, login.refresh, { lesson_id: 5 }, login.cookie), 401, /access token/);
      expectRefusal(await rest(svc, "/conversations", login.refresh, login.cookie), 401, /access token/);
      expect(sum(await site.django.calls())).toBe(0);
    });

    test("tampered and forged tokens are refused", async () => {
      const login = await site.django.login(15);
      const forgedAsMentor = tampered(login.access, { user_id: 10 });
      const wrongKey = await mint({ user_id: 15 }, 600, "not-the-site-key-0123456789abcdef");
      await site.django.resetCalls();
      for (const token of [forgedAsMentor, wrongKey]) {
        expectRefusal(await upgrade(svc, token, { lesson_id: 5 }, login.cookie), 401, /./);
        expectRefusal(await rest(svc, "/conversations", token, login.cookie), 401, /./);
      }
      const calls = await site.django.calls();
      // With the key, a forgery costs nothing; without it, Django is the one that says no.
      if (mode === "local") expect(sum(calls)).toBe(0);
      else expect(calls.users).toBe(4);
      expect(calls.lesson_detail + calls.check_access).toBe(0);
    });

    test("no device cookie: refused with a message that names it, before any call", async () => {
      const login = await site.django.login(16);
      await site.django.resetCalls();
      expectRefusal(await upgrade(svc, login.access, { lesson_id: 5 }), 401, /device_id cookie is missing/);
      expectRefusal(
        await rest(svc, "/conversations", login.access, "sessionid=x"),
        401,
        /device_id cookie is missing/,
      );
      expect(sum(await site.django.calls())).toBe(0);
    });

    test("a newer login makes the old device cookie stale; open sockets stay", async () => {
      // A device replaced before the chat ever saw it: Django refuses it.
      const first = await site.django.login(16);
      const second = await site.django.login(16);
      expectRefusal(await upgrade(svc, first.access, { lesson_id: 5 }, first.cookie), 401, /newer login/);
      expectRefusal(await rest(svc, "/conversations", first.access, first.cookie), 401, /newer login/);
      expect((await rest(svc, "/conversations", second.access, second.cookie)).status).toBe(200);

      // A device the chat has cached, replaced by a login the chat then sees.
      const mentor = await site.django.login(10);
      const old = await site.django.login(16);
      const oldSocket = await open(svc, old, { lesson_id: 5 });
      const m = await open(svc, mentor, { lesson_id: 5, student_id: 16 });
      await oldSocket.next("ready");
      await m.next("ready");
      expect((await rest(svc, "/conversations", old.access, old.cookie)).status).toBe(200);
      const fresh = await site.django.login(16);
      expect((await rest(svc, "/conversations", fresh.access, fresh.cookie)).status).toBe(200);
      expectRefusal(await rest(svc, "/conversations", old.access, old.cookie), 401, /newer login/);
      expectRefusal(await upgrade(svc, old.access, { lesson_id: 5 }, old.cookie), 401, /newer login/);
      await chatRoundTrip(oldSocket, m, `still here ${mode}`);
      expect(oldSocket.closed).toBeNull();
      oldSocket.close();
      m.close();
    });

    test("the auth frame takes a refreshed token and refuses a bad one without closing", async () => {
      const login = await site.django.login(15);
      const s = await open(svc, login, { lesson_id: 5 });
      await s.next("ready");
      s.send({ type: "auth", token: await refreshed(login) });
      const ok = await s.next("auth_ok");
      expect(Date.parse(String(ok.expires_at))).toBeGreaterThan(Date.now());
      s.send({ type: "auth", token: login.refresh });
      expect(await s.next("error")).toMatchObject({ code: "unauthorized" });
      s.send({ type: "auth", token: await mint({ user_id: 15 }, -120) });
      expect(await s.next("error")).toMatchObject({ code: "unauthorized" });
      s.send({ type: "ping" });
      await s.next("pong");
      expect(s.closed).toBeNull();
      s.close();
    });

    test("a burst of 50 connects and 50 REST calls costs one call of each kind", async () => {
      const fresh = await chatService(mode); // empty caches
      const student = await site.django.login(15);
      const other = await site.django.login(16);
      await site.django.resetCalls();
      const sockets = await Promise.all(
        Array.from({ length: 50 }, () => open(fresh, student, { lesson_id: 7 })),
      );
      await Promise.all(sockets.map((s) => s.next("ready")));
      let calls = await site.django.calls();
      expect({ users: calls.users, lesson: calls.lesson_detail, access: calls.check_access }).toEqual({
        users: 1,
        lesson: 1,
        access: 1,
      });
      for (const s of sockets) s.close();

      await site.django.resetCalls();
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => rest(fresh, "/conversations", other.access, other.cookie)),
      );
      expect(answers.every((a) => a.status === 200)).toBe(true);
      calls = await site.django.calls();
      expect(sum(calls)).toBe(1);
    });

    test("a refusal for one user's token is not cached for others", async () => {
      const fresh = await chatService(mode);
      const stale = await site.django.login(15);
      // The chat caches 15 as authenticated, then 15 logs in elsewhere (unseen by the chat).
      expect((await rest(fresh, "/conversations", stale.access, stale.cookie)).status).toBe(200);
      await site.django.login(15);
      await site.django.resetCalls();
      expectRefusal(await upgrade(fresh, stale.access, { lesson_id: 7 }, stale.cookie), 401, /newer login/);
      const other = await site.django.login(16);
      const s = await open(fresh, other, { lesson_id: 7 });
      expect((await s.next("ready")).student_id).toBe(16);
      expect((await site.django.calls()).lesson_detail).toBe(2);
      s.close();

      // The same at once, on a lesson nobody asked about yet: whoever joins the stale caller's
      // call must not inherit its 401.
      const stale2 = await site.django.login(15);
      const other2 = await site.django.login(16);
      for (const l of [stale2, other2]) {
        expect((await rest(fresh, "/conversations", l.access, l.cookie)).status).toBe(200);
      }
      await site.django.login(15);
      const [refused, joined] = await Promise.all([
        upgrade(fresh, stale2.access, { lesson_id: 5 }, stale2.cookie),
        upgrade(fresh, other2.access, { lesson_id: 5 }, other2.cookie),
      ]);
      expectRefusal(refused, 401, /newer login/);
      expect(joined.status).toBe(101);
    });

    test("Django down: new connects get 503, open chats go on, the auth frame is told why", async () => {
      const mentor = await site.django.login(11);
      const student = await site.django.login(19);
      const m = await open(svc, mentor, { lesson_id: 6, student_id: 19 });
      const s = await open(svc, student, { lesson_id: 6 });
      await m.next("ready");
      await s.next("ready");
      const newToken = await refreshed(student);
      const newcomer = await site.django.login(15); // never seen by the chat

      await site.django.stop();
      try {
        expectRefusal(
          await upgrade(svc, newcomer.access, { lesson_id: 5 }, newcomer.cookie),
          503,
          /identity backend is unavailable/,
        );
        expectRefusal(
          await rest(svc, "/conversations", newcomer.access, newcomer.cookie),
          503,
          /identity backend is unavailable/,
        );
        // Degraded, not unready: open chats still work.
        const ready = await fetch(`${svc.url}/readyz`);
        expect(ready.status).toBe(200);
        expect(((await ready.json()) as { checks: { identity: { ok: boolean } } }).checks.identity.ok).toBe(
          false,
        );
        await chatRoundTrip(s, m, `during the outage ${mode}`);
        await chatRoundTrip(m, s, `reply during the outage ${mode}`);
        s.send({ type: "auth", token: newToken });
        expect(await s.next("error")).toMatchObject({
          code: "unavailable",
          message: expect.stringMatching(/identity backend is unavailable/),
        });
        await chatRoundTrip(s, m, `after the auth error ${mode}`);
        expect(s.closed).toBeNull();
        expect(m.closed).toBeNull();
      } finally {
        await site.django.start();
      }
      // The outage's failures were not cached.
      const back = await open(svc, newcomer, { lesson_id: 5 });
      await back.next("ready");
      s.send({ type: "auth", token: newToken });
      await s.next("auth_ok");
      for (const x of [m, s, back]) x.close();
    });

    test("Django hanging: new connects fail with 503 after about DJANGO_TIMEOUT_MS", async () => {
      const login = await site.django.login(16);
      site.django.pause();
      try {
        let t0 = performance.now();
        expectRefusal(
          await upgrade(svc, login.access, { lesson_id: 5 }, login.cookie),
          503,
          /identity backend is unavailable/,
        );
        const wsMs = performance.now() - t0;
        t0 = performance.now();
        expectRefusal(
          await rest(svc, "/conversations", login.access, login.cookie),
          503,
          /identity backend is unavailable/,
        );
        const restMs = performance.now() - t0;
        for (const ms of [wsMs, restMs]) {
          expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.9);
          expect(ms).toBeLessThan(TIMEOUT_MS + 3000);
        }
        console.log(
          `[${mode}] hung Django: upgrade refused after ${wsMs.toFixed(0)} ms, REST after ${restMs.toFixed(0)} ms`,
        );
      } finally {
        site.django.resume();
      }
    });
  });
}
