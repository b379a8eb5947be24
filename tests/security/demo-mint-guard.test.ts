import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { jwtVerify } from "jose";
import { type InProcessService, startTestService } from "../helpers/service.ts";
import { TEST_SECRET } from "../helpers/tokens.ts";

/**
 * Who may mint dev tokens at `POST /demo/token`: a browser on this machine talking straight to
 * the service. Refused: anything through a reverse proxy (a real one runs in front, over a
 * socket), a DNS-rebinding page (its own Host and Origin, text/plain), and any caller while the
 * service listens on every interface, unless DEMO_MINT_PUBLIC=true.
 */

let svc: InProcessService;
let proxy: ReturnType<typeof Bun.serve>;
const port = () => Number(new URL(svc.url).port);

/**
 * A reverse proxy as nginx is usually set up: Host rewritten to the upstream, the client's
 * address appended to X-Forwarded-For, and a Via line. It forwards over a real socket.
 */
function startProxy(upstream: string) {
  return Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req, server) {
      const url = new URL(req.url);
      const headers = new Headers(req.headers);
      const client = req.headers.get("x-test-client-ip") ?? server.requestIP(req)?.address ?? "";
      headers.delete("x-test-client-ip");
      const prior = headers.get("x-forwarded-for");
      headers.set("x-forwarded-for", prior ? `${prior}, ${client}` : client);
      headers.set("via", "1.1 test-proxy");
      headers.set("host", new URL(upstream).host);
      const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
        method: req.method,
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer(),
        redirect: "manual",
      });
      return new Response(res.body, { status: res.status, headers: res.headers });
    },
  });
}

/** One HTTP/1.1 request written byte for byte, so Host and Origin are exactly what a browser sent. */
async function raw(
  p: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; body: string }> {
  const lines = [`${method} ${path} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (body) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  lines.push("Connection: close", "", body);
  const text = await new Promise<string>((resolve, reject) => {
    const sock = net.connect(p, "127.0.0.1", () => sock.write(lines.join("\r\n")));
    let out = "";
    sock.setEncoding("utf8");
    sock.on("data", (d) => {
      out += d;
    });
    sock.on("end", () => resolve(out));
    sock.on("error", reject);
    sock.setTimeout(10_000, () => reject(new Error("no answer")));
  });
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

const mintBody = JSON.stringify({ user_id: 10 });
const json = { "Content-Type": "application/json" };

async function expectMentorToken(res: Response): Promise<void> {
  expect(res.status).toBe(200);
  const { token } = (await res.json()) as { token: string };
  const { payload } = await jwtVerify(token, new TextEncoder().encode(TEST_SECRET));
  expect(payload.user_id).toBe(10);
}

beforeAll(async () => {
  svc = await startTestService({ env: { DEMO_PAGE: "true" } });
  proxy = startProxy(svc.url);
});

afterAll(async () => {
  await proxy?.stop(true);
  await svc?.stop();
});

describe("dev-token minting behind a reverse proxy", () => {
  test("is allowed straight from this machine", async () => {
    await expectMentorToken(
      await fetch(`${svc.url}/demo/token`, { method: "POST", headers: json, body: mintBody }),
    );
  });

  test("is refused through the proxy, whose peer address is loopback too", async () => {
    const res = await fetch(`http://127.0.0.1:${proxy.port}/demo/token`, {
      method: "POST",
      headers: { ...json, "x-test-client-ip": "203.0.113.9" },
      body: mintBody,
    });
    expect(res.status).toBe(403);
    const body = await res.text();
    expect(body).not.toContain('token":');
    expect(body).toContain("proxy");
    const users = await fetch(`http://127.0.0.1:${proxy.port}/demo/users`);
    expect(users.status).toBe(403);
  });

  test.each([
    ["Forwarded", "for=203.0.113.9"],
    ["X-Forwarded-For", "203.0.113.9"],
    ["X-Real-IP", "203.0.113.9"],
    ["Via", "1.1 edge"],
  ])("is refused when the request carries %s", async (name, value) => {
    const res = await fetch(`${svc.url}/demo/token`, {
      method: "POST",
      headers: { ...json, [name]: value },
      body: mintBody,
    });
    expect(res.status).toBe(403);
  });
});

describe("dev-token minting and DNS rebinding", () => {
  test("a rebinding page's request (its own Host and Origin, text/plain) is refused", async () => {
    const evil = `rebind.evil.example:${port()}`;
    const res = await raw(
      port(),
      "POST",
      "/demo/token",
      { Host: evil, Origin: `http://${evil}`, "Content-Type": "text/plain" },
      mintBody,
    );
    expect(res.status).toBe(403);
    expect(res.body).not.toContain('token":');
  });

  test("a foreign Host is refused even with a JSON body, and on /demo/users", async () => {
    const evil = `rebind.evil.example:${port()}`;
    const mint = await raw(port(), "POST", "/demo/token", { Host: evil, ...json }, mintBody);
    expect(mint.status).toBe(403);
    const users = await raw(port(), "GET", "/demo/users", { Host: evil });
    expect(users.status).toBe(403);
  });

  test("the mint needs application/json even from localhost", async () => {
    const host = `localhost:${port()}`;
    const plain = await raw(
      port(),
      "POST",
      "/demo/token",
      { Host: host, Origin: `http://${host}`, "Content-Type": "text/plain" },
      mintBody,
    );
    expect(plain.status).toBe(415);
    expect(plain.body).not.toContain('token":');
  });

  test.each(["localhost", "127.0.0.1", "[::1]"])("Host %s with its own Origin mints", async (name) => {
    const host = `${name}:${port()}`;
    const res = await raw(
      port(),
      "POST",
      "/demo/token",
      { Host: host, Origin: `http://${host}`, "Content-Type": "application/json; charset=utf-8" },
      mintBody,
    );
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).token).toMatch(/^ey/);
  });
});

describe("dev-token minting and the listen address", () => {
  test("off while listening on every interface; DEMO_MINT_PUBLIC=true turns it on for local callers", async () => {
    const wide = await startTestService({ env: { DEMO_PAGE: "true", HOST: "0.0.0.0" } });
    const opened = await startTestService({
      env: { DEMO_PAGE: "true", HOST: "0.0.0.0", DEMO_MINT_PUBLIC: "true" },
    });
    try {
      const post = (url: string, headers: Record<string, string> = {}) =>
        fetch(`${url}/demo/token`, { method: "POST", headers: { ...json, ...headers }, body: mintBody });
      expect((await post(wide.url)).status).toBe(404);
      expect((await fetch(`${wide.url}/demo`)).status).toBe(200); // the page stays: paste a token
      await expectMentorToken(await post(opened.url));
      expect((await post(opened.url, { "X-Forwarded-For": "203.0.113.9" })).status).toBe(403);
    } finally {
      await wide.stop();
      await opened.stop();
    }
  });
});
