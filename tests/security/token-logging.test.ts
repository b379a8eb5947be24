import { beforeAll, describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config.ts";
import { createIdentity } from "../../src/identity/index.ts";
import { redactText, silentLogger } from "../../src/log.ts";
import { BAD_CALLERS, rawUpgrade, tokenFor } from "../helpers/hostile.ts";
import { createLogger, spawnService, startTestService, tempDir, testEnv } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";
import { TestSocket } from "../helpers/ws-client.ts";

/**
 * No log line ever holds a token: tokens go through the query string, the Authorization header
 * and the Sec-WebSocket-Protocol header, on successful and failed connects, REST calls, re-auth
 * frames and error paths, and every line the service writes is searched for every token used.
 */

/** Secrets to look for: the whole token and, for a JWT, its signature on its own. */
function needles(tokens: string[]): string[] {
  const out = new Set<string>();
  for (const t of tokens) {
    out.add(t);
    const sig = t.split(".")[2];
    if (sig && sig.length >= 16) out.add(sig);
    if (!t.includes(".")) out.add(t);
  }
  return [...out];
}

function leaks(lines: string[], tokens: string[]): Array<{ line: string; token: string }> {
  const found: Array<{ line: string; token: string }> = [];
  for (const line of lines) {
    for (const n of needles(tokens)) if (line.includes(n)) found.push({ line, token: `${n.slice(0, 12)}…` });
  }
  return found;
}

/** Drives every way a token reaches the service; returns the tokens it used. */
async function exercise(url: string, poison: string[] = []): Promise<string[]> {
  const port = Number(new URL(url).port);
  const wsUrl = `${url.replace("http", "ws")}/ws`;
  const used: string[] = [...poison];
  const good = [await mintToken(15), await mintToken(10), await mintToken(15)];
  used.push(...good);
  const bad: string[] = [];
  for (const c of BAD_CALLERS) {
    const t = await tokenFor(c);
    if (t) bad.push(t);
  }
  used.push(...bad);

  // Successful connects, one per transport, each re-authenticating with good and bad tokens.
  const socks = [
    await TestSocket.open(`${wsUrl}?lesson_id=5&token=${good[0]}`),
    await TestSocket.open(`${wsUrl}?lesson_id=5&student_id=15`, {
      headers: { Authorization: `Bearer ${good[1]}` },
    }),
    await TestSocket.open(`${wsUrl}?lesson_id=5`, { protocols: ["bearer", good[2]!] }),
  ];
  for (const s of socks) {
    await s.next("ready");
    s.send({ type: "message", text: "hello" });
    await s.next("ack");
    for (const t of [...bad, ...poison]) s.send({ type: "auth", token: t });
    s.send({ type: "auth", token: await mintToken(16) }); // another user: error + close 1008
    await s.closedWith(5000);
  }
  // Failed connects, every bad token through every transport, and poison tokens that blow up.
  for (const t of [...bad, ...poison]) {
    await rawUpgrade(port, `/ws?lesson_id=5&token=${encodeURIComponent(t)}`);
    await rawUpgrade(port, "/ws?lesson_id=5", { Authorization: `Bearer ${t}` });
    await rawUpgrade(port, "/ws?lesson_id=5", { "Sec-WebSocket-Protocol": `bearer, ${t}` });
    await rawUpgrade(port, `/ws?lesson_id=999&user_id=3&token=${encodeURIComponent(t)}`);
  }
  // Authorised but refused connects (403/404/400) with good tokens.
  await rawUpgrade(port, `/ws?lesson_id=6&token=${good[0]}`);
  await rawUpgrade(port, `/ws?lesson_id=999&token=${good[0]}`);
  await rawUpgrade(port, `/ws?lesson_id=5&since=zzz&token=${good[0]}`);
  // REST, good and bad, including tokens in the query string where they do not belong.
  for (const t of [...good, ...bad, ...poison]) {
    await fetch(`${url}/conversations`, { headers: { Authorization: `Bearer ${t}` } });
    await fetch(`${url}/messages?conversation_id=nope&token=${encodeURIComponent(t)}`, {
      headers: { Authorization: `Bearer ${t}` },
    });
    await fetch(`${url}/nowhere?access_token=${encodeURIComponent(t)}`);
  }
  return used;
}

describe("redactText", () => {
  test.each([
    [
      "a JWT anywhere",
      "x eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxNX0.c2lnbmF0dXJlLXNpZ25hdHVyZQ y",
      "c2lnbmF0dXJl",
    ],
    ["an unsigned JWT (alg none)", "eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoxNX0.", "eyJ1c2VyX2lkIjoxNX0"],
    ["token= in a query", "/ws?lesson_id=5&token=opaque-secret-1&x=1", "opaque-secret-1"],
    ["a Bearer header value", "upstream said: Authorization: Bearer opaque-secret-2", "opaque-secret-2"],
    ["a bearer subprotocol", "protocols: bearer, opaque-secret-3", "opaque-secret-3"],
  ])("%s", (_name, text, secret) => {
    expect(redactText(text)).not.toContain(secret);
  });
});

describe("no token in the logs (in-process logger)", () => {
  const lines: string[] = [];
  const poisonJwt = "eyJhbGciOiJIUzI1NiJ9.eyJwb2lzb24iOnRydWV9.cG9pc29uLXNpZ25hdHVyZS0xMjM0NTY3ODk";
  const poisonOpaque = "opaque-poison-token-0123456789abcdef";
  let used: string[] = [];

  beforeAll(async () => {
    const dir = tempDir();
    // An identity backend that fails in the worst way: its error message quotes the token.
    const real = createIdentity(loadConfig(testEnv(dir.path)), silentLogger).identity;
    const svc = await startTestService({
      dir: dir.path,
      env: { AUTH_FAILURES_PER_MIN: "0", LOG_LEVEL: "debug" },
      logger: createLogger({ level: "debug", write: (l) => lines.push(l) }),
      overrides: {
        identity: {
          ...real,
          async authenticate(cred) {
            if (cred.token === poisonJwt || cred.token === poisonOpaque) {
              throw new Error(
                `backend refused Authorization: Bearer ${cred.token} (url ?token=${cred.token})`,
              );
            }
            return real.authenticate(cred);
          },
        },
      },
    });
    try {
      used = await exercise(svc.url, [poisonJwt, poisonOpaque]);
    } finally {
      await svc.stop();
      dir.remove();
    }
  }, 60_000);

  test("the run logged something, including the failure paths", () => {
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.some((l) => l.includes('"level":"error"'))).toBe(true);
    expect(lines.some((l) => l.includes("connection open"))).toBe(true);
  });

  test("no line holds any token", () => {
    expect(used.length).toBeGreaterThan(8);
    expect(leaks(lines, used)).toEqual([]);
  });
});

describe("no token in the logs (child process stdout and stderr)", () => {
  let out = "";
  let used: string[] = [];
  beforeAll(async () => {
    const dir = tempDir();
    const child = await spawnService({
      dir: dir.path,
      env: { LOG_LEVEL: "debug", AUTH_FAILURES_PER_MIN: "0" },
    });
    try {
      used = await exercise(child.url);
    } finally {
      await child.stop();
      out = `${child.logs()}\n${await new Response(child.proc.stderr as ReadableStream).text()}`;
      dir.remove();
    }
  }, 60_000);

  test("the child logged its connections", () => {
    expect(out).toContain("connection open");
    expect(out).toContain("connection closed");
  });

  test("no line holds any token", () => {
    expect(leaks(out.split("\n"), used)).toEqual([]);
  });
});
