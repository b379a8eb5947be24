import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type DjangoHandle, startDjango } from "../helpers/django.ts";
import { freePort } from "../helpers/net.ts";
import { createLogger, type InProcessService, startTestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import { TestSocket } from "../helpers/ws-client.ts";

/**
 * A wrong DJANGO_BASE_URL is named, not mistaken for an outage: against a site that serves its
 * API under a language prefix (302 from the unprefixed path, as the platform does), a 404 path,
 * or nothing listening, the start-up probe logs the problem and the value to set, /readyz shows
 * it, and the service starts anyway.
 */

let django: DjangoHandle;
const started: InProcessService[] = [];

beforeAll(async () => {
  django = await startDjango({ languagePrefix: "uz" });
});
afterAll(async () => {
  for (const s of started) await s.stop();
  await django?.dispose();
});

interface IdentityCheck {
  ok: boolean;
  probe?: { ok: boolean; status?: number; problem?: string; location?: string; suggested_base_url?: string };
}

async function chatService(baseUrl: string) {
  const lines: string[] = [];
  const svc = await startTestService({
    env: {
      DJANGO_BASE_URL: baseUrl,
      DIRECTORY_FILE: "",
      JWT_SECRET: django.secretKey,
      DJANGO_TIMEOUT_MS: "2000",
    },
    logger: createLogger({ level: "info", write: (l) => lines.push(l) }),
  });
  started.push(svc);
  const identity = await waitUntil(
    async () => {
      const res = await svc.get("/readyz");
      expect(res.status).toBe(200); // identity never makes the service unready
      const check = ((await res.json()) as { checks: { identity: IdentityCheck } }).checks.identity;
      return check.probe ? check : undefined;
    },
    { message: "the start-up probe of DJANGO_BASE_URL", timeoutMs: 10_000 },
  );
  return { svc, lines, identity };
}

describe("DJANGO_BASE_URL probe", () => {
  test("the unprefixed site answers 302: the Location and the value to set are named", async () => {
    const { svc, lines, identity } = await chatService(django.baseUrl);
    expect(identity.ok).toBe(false);
    expect(identity.probe!.status).toBe(302);
    expect(identity.probe!.location).toContain("/uz/api/content/chat-service/users/0/");
    expect(identity.probe!.suggested_base_url).toBe(`${django.baseUrl}/uz`);
    const logged = lines.filter((l) => l.includes("DJANGO_BASE_URL looks wrong"));
    expect(logged.length).toBe(1);
    expect(logged[0]).toContain(`set DJANGO_BASE_URL=${django.baseUrl}/uz`);

    // A connect is still refused (503), and the runtime log says redirect, with where to.
    const login = await django.login(15);
    const refused = await fetch(`${svc.url}/conversations`, {
      headers: { Authorization: `Bearer ${login.access}`, Cookie: login.cookie },
    });
    expect(refused.status).toBe(503);
    expect(
      lines.some((l) => l.includes("identity backend redirected") && l.includes("/uz/api/content")),
    ).toBe(true);
  });

  test("the suggested value works: probe ok, a student connects through the prefixed site", async () => {
    const { svc, identity } = await chatService(`${django.baseUrl}/uz`);
    expect(identity.ok).toBe(true);
    expect(identity.probe!.ok).toBe(true);
    const login = await django.login(15);
    const sock = await TestSocket.open(
      `${svc.url.replace("http", "ws")}/ws?lesson_id=5&token=${login.access}`,
      {
        headers: { Cookie: login.cookie },
      },
    );
    expect((await sock.next("ready")).user_id).toBe(15);
    sock.close();
  });

  test("a path with no chat-service API (404) is named", async () => {
    const { identity } = await chatService(`${django.baseUrl}/ru`);
    expect(identity.probe!.status).toBe(404);
    expect(identity.probe!.problem).toContain("no chat-service API");
  });

  test("nothing listening: named, and the service still starts", async () => {
    const { svc, identity } = await chatService(`http://127.0.0.1:${freePort()}`);
    expect(identity.probe!.problem).toContain("cannot reach DJANGO_BASE_URL");
    expect((await svc.get("/healthz")).status).toBe(200);
  });
});
