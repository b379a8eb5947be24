/**
 * Exercises the Django stand-in itself over real HTTP, so chat-service tests can trust that it
 * behaves like the platform's site described in docs/django.md ("The three calls").
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decodeJwt, jwtVerify, SignJWT } from "jose";
import {
  DJANGO_CAST,
  type DjangoHandle,
  type DjangoLogin,
  djangoAuthHeaders,
  startDjango,
} from "../helpers/django";

const API = "/api/content/chat-service";
const { mentors, students } = DJANGO_CAST;

let django: DjangoHandle;

beforeAll(async () => {
  django = await startDjango();
});

afterAll(async () => {
  await django?.dispose();
});

async function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${django.baseUrl}${path}`, { headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function asLogin(login: DjangoLogin): Record<string, string> {
  return djangoAuthHeaders(login);
}

async function mint(claims: Record<string, unknown>, iat: number, exp: number, secret = django.secretKey) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));
}

describe("login", () => {
  test("returns access and refresh tokens and sets a device_id cookie", async () => {
    const login = await django.login(students.s15.userId);
    expect(login.access).toBeString();
    expect(login.refresh).toBeString();
    expect(login.deviceId.length).toBeGreaterThan(10);
    expect(login.cookie).toBe(`device_id=${login.deviceId}`);
  });

  test("the access token is a 15-minute SimpleJWT access token signed with the secret key", async () => {
    const login = await django.login(students.s15.userId);
    const claims = decodeJwt(login.access);
    expect(claims).toMatchObject({ token_type: "access", user_id: students.s15.userId });
    expect(claims.jti).toBeString();
    expect(claims.exp! - claims.iat!).toBe(900);
    // The chat service verifies locally with JWT_SECRET = the site's SECRET_KEY.
    const { protectedHeader } = await jwtVerify(login.access, new TextEncoder().encode(django.secretKey), {
      algorithms: ["HS256"],
    });
    expect(protectedHeader.alg).toBe("HS256");
    expect(decodeJwt(login.refresh)).toMatchObject({ token_type: "refresh", user_id: students.s15.userId });
  });

  test("the refresh endpoint trades a refresh token for a new access token", async () => {
    const login = await django.login(students.s15.userId);
    const res = await fetch(`${django.baseUrl}/api/token/refresh/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh: login.refresh }),
    });
    expect(res.status).toBe(200);
    const { access } = (await res.json()) as { access: string };
    expect(decodeJwt(access)).toMatchObject({ token_type: "access", user_id: students.s15.userId });
    // The device is still the one recorded at login, so the refreshed token works with its cookie.
    expect(
      (await get(`${API}/users/15/`, { Authorization: `Bearer ${access}`, Cookie: login.cookie })).status,
    ).toBe(200);
  });

  test("a wrong password is refused with 401", async () => {
    const res = await fetch(`${django.baseUrl}/api/token/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "u15", password: "nope" }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.getSetCookie()).toEqual([]);
  });
});

describe("chat-service endpoints", () => {
  let student: DjangoLogin;

  beforeAll(async () => {
    student = await django.login(students.s16.userId);
  });

  test("users/{id}/ answers the documented fields", async () => {
    expect(await get(`${API}/users/${students.s15.userId}/`, asLogin(student))).toEqual({
      status: 200,
      body: { id: 15, email: "u15@example.test", is_mentor: false, first_name: "Student", last_name: "15" },
    });
    const mentor = await get(`${API}/users/${mentors.m10.userId}/`, asLogin(student));
    expect(mentor.status).toBe(200);
    expect(mentor.body).toMatchObject({ id: 10, is_mentor: true });
  });

  test("users/{id}/ is 404 for an unknown user", async () => {
    expect((await get(`${API}/users/${DJANGO_CAST.missingUserId}/`, asLogin(student))).status).toBe(404);
  });

  test("lesson/{id}/detail/ gives the mentor's USER id as teacher_id", async () => {
    expect(await get(`${API}/lesson/5/detail/`, asLogin(student))).toEqual({
      status: 200,
      body: { id: 5, course_id: 1, teacher_id: mentors.m10.userId },
    });
    expect((await get(`${API}/lesson/6/detail/`, asLogin(student))).body).toEqual({
      id: 6,
      course_id: 2,
      teacher_id: mentors.m11.userId,
    });
    expect((await get(`${API}/lesson/${DJANGO_CAST.missingLessonId}/detail/`, asLogin(student))).status).toBe(
      404,
    );
  });

  test("check-access allows an active enrollment, with the mentor RECORD id as teacher_id", async () => {
    expect(await get(`${API}/check-access/?lesson_id=5&student_id=15`, asLogin(student))).toEqual({
      status: 200,
      body: { allowed: true, course_id: 1, teacher_id: mentors.m10.mentorRecordId, student_id: 15 },
    });
    expect((await get(`${API}/check-access/?lesson_id=6&student_id=19`, asLogin(student))).body).toEqual({
      allowed: true,
      course_id: 2,
      teacher_id: mentors.m11.mentorRecordId,
      student_id: 19,
    });
  });

  test.each([
    ["inactive enrollment", 5, students.s17.userId],
    ["not enrolled anywhere", 5, students.s18.userId],
    ["enrolled in another course", 5, students.s19.userId],
    ["a mentor is not a student", 5, mentors.m10.userId],
  ])("check-access refuses with 403: %s", async (_why, lessonId, studentId) => {
    const res = await get(
      `${API}/check-access/?lesson_id=${lessonId}&student_id=${studentId}`,
      asLogin(student),
    );
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ allowed: false, reason: expect.any(String) });
  });

  test("check-access is 404 for an unknown lesson and 400 for missing or non-integer params", async () => {
    const h = asLogin(student);
    expect((await get(`${API}/check-access/?lesson_id=999&student_id=15`, h)).status).toBe(404);
    expect((await get(`${API}/check-access/?lesson_id=5`, h)).status).toBe(400);
    expect((await get(`${API}/check-access/?student_id=15`, h)).status).toBe(400);
    expect((await get(`${API}/check-access/?lesson_id=five&student_id=15`, h)).status).toBe(400);
  });
});

describe("authentication", () => {
  const path = `${API}/users/15/`;

  test("no Authorization header is 401", async () => {
    const login = await django.login(15);
    expect((await get(path, { Cookie: login.cookie })).status).toBe(401);
  });

  test("a garbage token is 401", async () => {
    const login = await django.login(15);
    expect((await get(path, { Authorization: "Bearer not.a.jwt", Cookie: login.cookie })).status).toBe(401);
  });

  test("a valid token without the device_id cookie is 401 and says why", async () => {
    const login = await django.login(15);
    const res = await get(path, { Authorization: `Bearer ${login.access}` });
    expect(res.status).toBe(401);
    expect((res.body as { detail: string }).detail).toContain("device");
  });

  test("a second login makes the first device's cookie stale (401), the new one works", async () => {
    const first = await django.login(15);
    expect((await get(path, asLogin(first))).status).toBe(200);
    const second = await django.login(15);
    expect(second.deviceId).not.toBe(first.deviceId);
    const stale = await get(path, asLogin(first));
    expect(stale.status).toBe(401);
    expect((stale.body as { detail: string }).detail).toContain("device");
    // The device went stale, not the token: the old token with the new cookie still passes.
    expect((await get(path, { Authorization: `Bearer ${first.access}`, Cookie: second.cookie })).status).toBe(
      200,
    );
    expect((await get(path, asLogin(second))).status).toBe(200);
  });

  test("another user's device cookie is 401", async () => {
    const a = await django.login(15);
    const b = await django.login(16);
    expect((await get(path, { Authorization: `Bearer ${a.access}`, Cookie: b.cookie })).status).toBe(401);
  });

  test("a refresh token used as an access token is 401", async () => {
    const login = await django.login(15);
    expect((await get(path, { Authorization: `Bearer ${login.refresh}`, Cookie: login.cookie })).status).toBe(
      401,
    );
  });

  test("an expired token is 401, while the same token minted unexpired passes", async () => {
    const login = await django.login(15);
    const now = Math.floor(Date.now() / 1000);
    const claims = { token_type: "access", user_id: 15, jti: crypto.randomUUID().replaceAll("-", "") };
    const fresh = await mint(claims, now, now + 900);
    expect((await get(path, { Authorization: `Bearer ${fresh}`, Cookie: login.cookie })).status).toBe(200);
    const expired = await mint(claims, now - 1000, now - 100);
    expect((await get(path, { Authorization: `Bearer ${expired}`, Cookie: login.cookie })).status).toBe(401);
  });

  test("a token signed with another key is 401", async () => {
    const login = await django.login(15);
    const now = Math.floor(Date.now() / 1000);
    const forged = await mint({ token_type: "access", user_id: 15, jti: "x" }, now, now + 900, "not-the-key");
    expect((await get(path, { Authorization: `Bearer ${forged}`, Cookie: login.cookie })).status).toBe(401);
  });
});

describe("call counter", () => {
  test("counts calls by kind, refused ones included, and resets", async () => {
    const login = await django.login(16);
    await django.resetCalls();
    const h = asLogin(login);
    await get(`${API}/users/15/`, h);
    await get(`${API}/users/16/`, h);
    await get(`${API}/users/15/`, {});
    await get(`${API}/lesson/5/detail/`, h);
    await get(`${API}/check-access/?lesson_id=5&student_id=15`, h);
    expect(await django.calls()).toEqual({
      users: 3,
      lesson_detail: 1,
      check_access: 1,
      token: 0,
      token_refresh: 0,
      other: 0,
    });
    await django.resetCalls();
    expect(Object.values(await django.calls()).every((n) => n === 0)).toBe(true);
  });

  test("counts concurrent calls exactly", async () => {
    const login = await django.login(16);
    await django.resetCalls();
    await Promise.all(Array.from({ length: 50 }, () => get(`${API}/users/15/`, asLogin(login))));
    expect((await django.calls()).users).toBe(50);
  });
});

describe("outages", () => {
  test("stop() then start() keeps the data: an earlier login still works", async () => {
    const login = await django.login(19);
    const pid = django.pid;
    await django.stop();
    expect(django.pid).toBeUndefined();
    await expect(fetch(`${django.baseUrl}${API}/users/19/`, { headers: asLogin(login) })).rejects.toThrow();
    await django.start();
    expect(django.pid).not.toBe(pid);
    expect((await get(`${API}/users/19/`, asLogin(login))).status).toBe(200);
  });

  test("pause() makes calls hang until resume()", async () => {
    const login = await django.login(19);
    django.pause();
    try {
      const hung = fetch(`${django.baseUrl}${API}/users/19/`, {
        headers: asLogin(login),
        signal: AbortSignal.timeout(300),
      });
      await expect(hung).rejects.toThrow();
    } finally {
      django.resume();
    }
    expect((await get(`${API}/users/19/`, asLogin(login))).status).toBe(200);
  });

  test("a restart that cannot bind its port fails with the server's own words", async () => {
    await django.stop();
    const squatter = Bun.serve({ port: django.port, hostname: "127.0.0.1", fetch: () => new Response("{}") });
    try {
      await expect(django.start()).rejects.toThrow("already in use");
    } finally {
      squatter.stop(true);
    }
    await django.start();
    expect(await django.calls()).toMatchObject({ users: 0 });
  });
});
