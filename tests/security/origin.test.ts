import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { compileOrigins } from "../../src/auth/origin.ts";
import { rawUpgrade } from "../helpers/hostile.ts";
import { type InProcessService, startTestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

const LIST = ["https://school.example", "https://*.school.example", "http://localhost:5173/"];

describe("compileOrigins", () => {
  const allowed = compileOrigins(LIST);
  const rows: Array<[string | null, boolean]> = [
    ["https://school.example", true],
    ["HTTPS://School.Example", true],
    ["https://app.school.example", true],
    ["https://a.b.school.example", true],
    ["http://localhost:5173", true], // the list's trailing slash is ignored
    [null, true], // no Origin: not a browser, and a non-browser could send any Origin anyway
    ["http://school.example", false], // scheme matters
    ["https://school.example:8443", false], // port matters
    ["https://evilschool.example", false],
    ["https://school.example.evil.test", false],
    ["https://.school.example", false], // the wildcard needs a label
    ["null", false], // sandboxed iframes and file:// pages
    ["", false],
    ["https://evil.test", false],
    // Parsed, not compared as strings: each of these ends with ".school.example".
    ["https://evil.example/.school.example", false],
    ["https://evil.example?.school.example", false],
    ["https://evil.example#.school.example", false],
    ["https://evil.example\\.school.example", false],
    ["https://user@app.school.example", false],
    ["https://app.school.example:8443", false], // the wildcard's port is the default one
    ["https://app.school.example.", false],
  ];
  for (const [origin, ok] of rows) {
    test(`${JSON.stringify(origin)} → ${ok ? "allowed" : "refused"}`, () => {
      expect(allowed(origin)).toBe(ok);
    });
  }

  test("unset, empty or '*' allows every origin", () => {
    for (const list of [undefined, [], ["*"], ["https://a.example", "*"]]) {
      expect(compileOrigins(list)("https://anything.test")).toBe(true);
    }
  });
});

describe("ALLOWED_ORIGINS over the wire", () => {
  let svc: InProcessService;
  let port: number;
  beforeAll(async () => {
    svc = await startTestService({ env: { ALLOWED_ORIGINS: LIST.join(",") } });
    port = Number(new URL(svc.url).port);
  });
  afterAll(async () => {
    await svc?.stop();
  });

  const cases: Array<[string | null, number]> = [
    ["https://school.example", 101],
    ["https://app.school.example", 101],
    [null, 101],
    ["https://evil.test", 403],
    ["https://school.example.evil.test", 403],
    ["null", 403],
    ["https://evil.example/.school.example", 403],
  ];
  for (const [origin, status] of cases) {
    test(`WebSocket upgrade from ${origin ?? "no Origin"} → ${status}`, async () => {
      const token = await mintToken(15);
      const answer = await rawUpgrade(
        port,
        `/ws?lesson_id=5&token=${token}`,
        origin === null ? {} : { Origin: origin },
      );
      expect(answer.status).toBe(status);
      if (status === 403) expect(JSON.parse(answer.body).error.message).toContain("origin");
    });
  }

  test("a refused origin is refused before its token is even looked at", async () => {
    const answer = await rawUpgrade(port, "/ws?lesson_id=5&token=garbage", { Origin: "https://evil.test" });
    expect(answer.status).toBe(403);
  });

  for (const [origin, ok] of cases.map(([o, s]) => [o, s === 101] as const)) {
    if (origin === null) continue;
    test(`CORS preflight from ${origin} → ${ok ? "allowed" : "no CORS headers"}`, async () => {
      const res = await fetch(`${svc.url}/conversations`, {
        method: "OPTIONS",
        headers: {
          Origin: origin,
          "Access-Control-Request-Method": "GET",
          "Access-Control-Request-Headers": "authorization",
        },
      });
      expect(res.status).toBeLessThan(500);
      expect(res.headers.get("access-control-allow-origin")).toBe(ok ? origin : null);
      if (ok)
        expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    });

    test(`CORS on a real GET from ${origin} → ${ok ? "origin echoed" : "no CORS headers"}`, async () => {
      const res = await fetch(`${svc.url}/conversations`, {
        headers: { Origin: origin, Authorization: `Bearer ${await mintToken(15)}` },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(ok ? origin : null);
    });
  }
});
