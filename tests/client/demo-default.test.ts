import { afterAll, describe, expect, test } from "bun:test";
import { type Browser, chromium } from "playwright-core";
import { loadConfig } from "../../src/config.ts";
import { type ChildService, spawnService, startTestService, tempDir } from "../helpers/service.ts";
import { TestSocket } from "../helpers/ws-client.ts";

/**
 * The first five minutes: `npm start` with nothing configured serves the demo on loopback, its
 * banner names the URL, and a browser opened there chats with a user picked from the list.
 * A key or Django turns the demo back to opt-in.
 */

const dir = tempDir("chat-demo-default-");
let svc: ChildService | null = null;
let browser: Browser | null = null;

afterAll(async () => {
  await browser?.close();
  await svc?.stop();
  dir.remove();
});

describe("the embedded default's configuration", () => {
  test("nothing configured: demo on, listening on loopback only", () => {
    expect(loadConfig({})).toMatchObject({ DEMO_PAGE: true, HOST: "127.0.0.1", DEMO_MINT_PUBLIC: false });
    // Empty values count as unset, as everywhere else.
    expect(loadConfig({ HOST: "", DEMO_PAGE: " " })).toMatchObject({ DEMO_PAGE: true, HOST: "127.0.0.1" });
  });

  test.each([
    ["JWT_SECRET", { JWT_SECRET: "0123456789abcdef0123" }],
    ["JWT_JWKS_URL", { JWT_JWKS_URL: "https://id.example.org/jwks" }],
    ["DJANGO_BASE_URL", { DJANGO_BASE_URL: "https://lessons.example.org" }],
  ])("with %s: demo off and HOST 0.0.0.0, unless set", (_name, env) => {
    expect(loadConfig(env)).toMatchObject({ DEMO_PAGE: false, HOST: "0.0.0.0" });
    expect(loadConfig({ ...env, DEMO_PAGE: "true", HOST: "10.0.0.5" })).toMatchObject({
      DEMO_PAGE: true,
      HOST: "10.0.0.5",
    });
  });

  test("explicit choices win over the embedded default", () => {
    expect(loadConfig({ DEMO_PAGE: "false", HOST: "0.0.0.0" })).toMatchObject({
      DEMO_PAGE: false,
      HOST: "0.0.0.0",
    });
  });

  test("with a key configured, /demo is not served", async () => {
    const keyed = await startTestService();
    try {
      expect(keyed.env.JWT_SECRET).toBeDefined();
      expect((await fetch(`${keyed.url}/demo`)).status).toBe(404);
    } finally {
      await keyed.stop();
    }
  });
});

/** Reads the child's stderr until the banner's demo line shows up. */
async function bannerOf(child: ChildService): Promise<string> {
  const reader = (child.proc.stderr as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 15_000;
  while (!/open the demo: .*\n.*\n/.test(text)) {
    if (Date.now() > deadline) throw new Error(`no demo line in the banner:\n${text}`);
    // The read itself must not outlast the deadline: an old start prints no demo line and waits.
    const timeout = Bun.sleep(deadline - Date.now()).then(() => ({ done: true, value: undefined }));
    const { done, value } = await Promise.race([reader.read(), timeout]);
    if (done) throw new Error(`no banner before stderr ended or 15 s passed:\n${text}`);
    text += decoder.decode(value);
  }
  reader.releaseLock();
  return text;
}

test("`npm start` with nothing configured: the banner's URL leads to a chat in Chromium", async () => {
  // Unset what the test helper configures, so this is the newcomer's start.
  svc = await spawnService({
    dir: dir.path,
    env: { JWT_SECRET: "", DIRECTORY_FILE: "", HOST: "", DEMO_PAGE: "", npm_lifecycle_event: "start" },
  });
  const banner = await bannerOf(svc);
  const port = new URL(svc.url).port;
  const demoUrl = /open the demo: +(\S+)/.exec(banner)?.[1];
  expect(demoUrl).toBe(`http://localhost:${port}/demo`);
  expect(banner).toContain("Maya Mentor (10)");
  expect(banner).not.toContain("user picker off");

  // The picker is on, which it only is while the service listens on loopback.
  expect(svc.logs()).toContain('"userPicker":"on, for browsers on this machine"');

  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
    headless: true,
  });
  const page = await (await browser.newContext()).newPage();
  await page.goto(demoUrl!);
  await page.locator("#pick").waitFor({ state: "visible", timeout: 20_000 });
  await page.locator("#user").selectOption("10");
  await page.locator("#student").fill("15");
  await page.locator("#open").click();
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 20_000 });
  await page.locator("#text").fill("hello from the first five minutes");
  await page.locator("#text").press("Enter");

  // The student, on a token minted the same way, gets it.
  const minted = await fetch(`${svc.url}/demo/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: 15 }),
  });
  expect(minted.status).toBe(200);
  const { token } = (await minted.json()) as { token: string };
  const student = await TestSocket.open(`ws://127.0.0.1:${port}/ws?lesson_id=5&token=${token}`);
  await student.next("ready");
  const history = await fetch(`${svc.url}/conversations`, { headers: { Authorization: `Bearer ${token}` } });
  const [conversation] = (await history.json()) as Array<{ last_message?: { text: string } }>;
  expect(conversation?.last_message?.text).toBe("hello from the first five minutes");
  student.close();
}, 60_000);
