import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { ChatClient, type ChatClientOptions, type ChatError } from "../../src/client/index.ts";
import { tokenTimes } from "../../src/client/token-refresh.ts";
import { revocableIdentity } from "../helpers/identity.ts";
import { type InProcessService, startTestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * The SDK keeps a session alive across token lifetimes: it refreshes at 80% of a token's life,
 * reconnects with a fresh token and `since=` after a 4001, and stops and reports on a 1008.
 */

const access = revocableIdentity();
const started = startTestService({
  env: { JWT_CLOCK_TOLERANCE_S: "0" },
  overrides: { identity: access.identity },
});
const clients: ChatClient[] = [];
let svc: InProcessService;

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => (await started).stop());

async function client(token: ChatClientOptions["token"], studentId: number) {
  svc = await started;
  const c = new ChatClient({ url: svc.url, token, lessonId: 5, studentId, heartbeatMs: 0 });
  clients.push(c);
  return c;
}

describe("SDK and token lifetimes", () => {
  test("tokenTimes reads iat and exp; garbage gives nothing", async () => {
    const t = tokenTimes(await mintToken(15, { expiresInS: 100 }));
    expect(t.exp! - t.iat!).toBe(100);
    expect(tokenTimes("not-a-jwt")).toEqual({});
  });

  test("refreshes at 80% of the token's lifetime: the socket outlives three tokens", async () => {
    let minted = 0;
    const c = await client(() => {
      minted++;
      return mintToken(15, { expiresInS: 3 });
    }, 15);
    const refreshed: string[] = [];
    const states: Array<number | undefined> = [];
    c.on("auth", (a) => refreshed.push(String(a.expires_at)));
    c.on("state", (s) => states.push(s.code));
    await c.connect();
    await Bun.sleep(7500);
    expect(refreshed.length).toBeGreaterThanOrEqual(2);
    expect(c.state).toBe("open");
    expect(states.filter((code) => code === 4001)).toEqual([]);
    expect(minted).toBeGreaterThanOrEqual(3);
    expect((await c.send("still here")).id).toMatch(/^[0-9a-f]{24}$/);
  }, 20_000);

  test("on 4001 it fetches a new token and resumes with since=: nothing missed", async () => {
    // The first token lives 2 s; every ask for a token in its last second fails (the refresh),
    // so the server's 4001 comes; tokens asked for after it live a minute.
    let firstIat: number | undefined;
    const c = await client(async () => {
      const nowS = Date.now() / 1000;
      if (firstIat === undefined) {
        const token = await mintToken(16, { expiresInS: 2 });
        firstIat = tokenTimes(token).iat!;
        return token;
      }
      if (nowS >= firstIat + 1 && nowS < firstIat + 1.95) throw new Error("token endpoint down");
      return mintToken(16, { expiresInS: 60 });
    }, 16);
    const codes: Array<number | undefined> = [];
    c.on("state", (s) => codes.push(s.code));
    const got: string[] = [];
    c.on("message", (m) => got.push(m.text ?? ""));
    await c.connect();
    const mentor = await client(() => mintToken(10), 16);
    await mentor.connect();
    await waitUntil(() => codes.includes(4001) || undefined, { message: "a 4001 close", timeoutMs: 8000 });
    // Sent while the student is between sockets: the resume delivers it.
    await mentor.send("during the gap");
    await waitUntil(() => got.includes("during the gap") || undefined, {
      message: "the message sent across the reconnect",
      timeoutMs: 8000,
    });
    expect(c.state).toBe("open");
  }, 20_000);

  test("on 1008 (access ended) it stops and reports", async () => {
    const c = await client(() => mintToken(16, { expiresInS: 3 }), 16);
    const errors: ChatError[] = [];
    c.on("error", (e) => errors.push(e));
    await c.connect();
    access.end(5, 16);
    await waitUntil(() => (c.state === "closed" ? true : undefined), {
      message: "the client to stop after 1008",
      timeoutMs: 8000,
    });
    expect(errors.map((e) => e.code)).toContain("forbidden");
  }, 20_000);
});
