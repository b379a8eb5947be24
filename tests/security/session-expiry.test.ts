import { afterAll, describe, expect, test } from "bun:test";
import { revocableIdentity } from "../helpers/identity.ts";
import { type InProcessService, startTestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { waitUntil } from "../helpers/wait.ts";
import { TestSocket } from "../helpers/ws-client.ts";

/**
 * A socket lives no longer than its newest token, and no longer than the access behind it:
 * expiry closes with 4001 after `token_expired`; a fresh `auth` extends it; an `auth` after the
 * enrollment ended closes with 1008 after `forbidden`.
 */

const access = revocableIdentity();
let svc: InProcessService;
const ready = startTestService({
  env: { JWT_CLOCK_TOLERANCE_S: "0" },
  overrides: { identity: access.identity },
}).then((s) => {
  svc = s;
});
afterAll(async () => {
  await ready;
  await svc.stop();
});

async function open(userId: number, query: Record<string, string | number>, expiresInS: number) {
  await ready;
  const params = new URLSearchParams({ token: await mintToken(userId, { expiresInS }) });
  for (const [k, v] of Object.entries(query)) params.set(k, String(v));
  const sock = await TestSocket.open(`${svc.url.replace("http", "ws")}/ws?${params}`);
  await sock.next("ready");
  return sock;
}

const closedWith = (sock: TestSocket, timeoutMs = 8000) =>
  waitUntil(() => sock.closed ?? undefined, { message: "the server to close the socket", timeoutMs });

describe("session lifetime", () => {
  test("when the token expires with no fresh auth: token_expired, then close 4001", async () => {
    const sock = await open(10, { lesson_id: 5, student_id: 15 }, 2);
    const opened = Date.now();
    const err = await sock.next("error", 8000);
    expect(err.code).toBe("token_expired");
    expect((await closedWith(sock)).code).toBe(4001);
    // Not before exp (2 s minus the second exp is rounded to), not long after.
    expect(Date.now() - opened).toBeGreaterThan(900);
    expect(Date.now() - opened).toBeLessThan(4000);
  });

  test("a fresh auth frame extends the session to the new token's expiry", async () => {
    const sock = await open(15, { lesson_id: 5 }, 2);
    sock.send({ type: "auth", token: await mintToken(15, { expiresInS: 60 }) });
    const ok = await sock.next("auth_ok");
    expect(Date.parse(String(ok.expires_at))).toBeGreaterThan(Date.now() + 50_000);
    await Bun.sleep(3500);
    expect(sock.closed).toBeNull();
    sock.send({ type: "ping" });
    await sock.next("pong");
    expect(sock.frames.some((f) => f.code === "token_expired")).toBe(false);
    sock.close();
  });

  test("a rejected auth frame (expired token) leaves the old deadline in place", async () => {
    const sock = await open(16, { lesson_id: 5 }, 2);
    sock.send({ type: "auth", token: await mintToken(16, { expiresInS: -10 }) });
    expect((await sock.next("error")).code).toBe("unauthorized");
    expect((await closedWith(sock)).code).toBe(4001);
  });

  test("auth after the enrollment ended: forbidden, then close 1008", async () => {
    const student = await open(16, { lesson_id: 5 }, 60);
    const mentor = await open(10, { lesson_id: 5, student_id: 16 }, 60);
    access.end(5, 16);
    student.send({ type: "auth", token: await mintToken(16, { expiresInS: 60 }) });
    expect((await student.next("error")).code).toBe("forbidden");
    expect((await closedWith(student)).code).toBe(1008);
    // The mentor's own re-auth names the student no longer enrolled: the same end.
    mentor.send({ type: "auth", token: await mintToken(10, { expiresInS: 60 }) });
    expect((await mentor.next("error")).code).toBe("forbidden");
    expect((await closedWith(mentor)).code).toBe(1008);
  });
});
