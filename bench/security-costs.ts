import { type DjangoCalls, type DjangoLogin, socketsAs, startDjango } from "../tests/helpers/django.ts";
import { rawUpgrade } from "../tests/helpers/hostile.ts";
import { type InProcessService, startTestService } from "../tests/helpers/service.ts";
import { mintToken } from "../tests/helpers/tokens.ts";

/**
 * What an authenticated or anonymous caller can make the service spend (issue #20, items 1–4),
 * measured with default limits against a real service, the Django test site counting its calls:
 *   npx bun bench/security-costs.ts
 * Prints one JSON object; run it on two commits to compare.
 */

const django = await startDjango();
const started: InProcessService[] = [];
const sum = (c: DjangoCalls) => Object.values(c).reduce((a, b) => a + b, 0);

async function service(mode: "local" | "remote" | "directory"): Promise<InProcessService> {
  const env: Record<string, string> =
    mode === "directory"
      ? {}
      : {
          DJANGO_BASE_URL: django.baseUrl,
          DIRECTORY_FILE: "",
          JWT_SECRET: mode === "local" ? django.secretKey : "",
        };
  // testEnv shortens the presence delay for tests; measure the default.
  const svc = await startTestService({ env: { ...env, PRESENCE_OFFLINE_DELAY_MS: "5000" } });
  started.push(svc);
  return svc;
}

const portOf = (svc: InProcessService) => Number(new URL(svc.url).port);

function tally(statuses: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}

/**
 * Item 1: 300 upgrade attempts, 10 at a time (under the cap on upgrades in flight), each
 * naming something that does not exist.
 */
async function upgradeFlood(login: DjangoLogin, query: (i: number) => string) {
  const svc = await service("local");
  await django.resetCalls();
  const statuses: number[] = [];
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < 300) {
      const i = next++;
      const a = await rawUpgrade(portOf(svc), `/ws?${query(i)}&token=${login.access}`, {
        Cookie: login.cookie,
      });
      statuses.push(a.status);
    }
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  const ms = Math.round(performance.now() - started);
  return { ms, statuses: tally(statuses), django: await django.calls() };
}

/** Item 2: a student connects and closes in a loop for 5 s; what does the mentor receive? */
async function presenceChurn() {
  const svc = await service("directory");
  const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
  await mentor.next("ready");
  await Bun.sleep(200);
  const before = mentor.frames.length;
  const end = Date.now() + 5000;
  let opened = 0;
  let refused = 0;
  while (Date.now() < end) {
    try {
      const s = await svc.connect(15, { lesson_id: 5 });
      await s.next("ready");
      opened++;
      s.close();
      await s.closedWith(3000).catch(() => {});
    } catch {
      refused++;
    }
  }
  // Long enough for a debounced "offline" to come out.
  await Bun.sleep(7000);
  const presence = mentor.frames.slice(before).filter((f) => f.type === "presence" && f.user_id === 15);
  return { opened, refused, presenceFramesToMentor: presence.length, mentorOpen: mentor.closed === null };
}

/** Item 3: 400 forged `auth` frames over 10 sockets of one user, without JWT_SECRET. */
async function forgedAuthFrames() {
  const svc = await service("remote");
  const login = await django.login(15);
  const sockets = await socketsAs(svc.url, login, "lesson_id=5", 10);
  await django.resetCalls();
  for (const s of sockets) {
    for (let i = 0; i < 40; i++) {
      const forged = await mintToken(15, { secret: "not-the-site-key-0123456789abcdef" });
      if (s.closed) break;
      s.send({ type: "auth", token: forged });
    }
  }
  await Bun.sleep(3000);
  return {
    django: await django.calls(),
    errors: tally(sockets.flatMap((s) => s.all("error").map((e) => e.code as never))),
    closed: sockets.filter((s) => s.closed).length,
  };
}

/** Item 4: 500 malformed 60 KB frames on one socket. */
async function malformedFlood() {
  const svc = await service("directory");
  const s = await svc.connect(15, { lesson_id: 5 });
  await s.next("ready");
  const junk = `{${"x".repeat(60_000)}`;
  for (let i = 0; i < 500; i++) s.send(junk);
  const deadline = Date.now() + 30_000;
  while (s.all("error").length < 500 && Date.now() < deadline && !s.closed) await Bun.sleep(50);
  return { answers: tally(s.all("error").map((e) => e.code as never)) };
}

try {
  const student = await django.login(15);
  const mentor = await django.login(10);
  const result = {
    item1_student_unknown_lessons: await upgradeFlood(student, (i) => `lesson_id=${10_000 + i}`),
    item1_mentor_random_students: await upgradeFlood(mentor, (i) => `lesson_id=5&student_id=${20_000 + i}`),
    item2_presence_churn_5s: await presenceChurn(),
    item3_forged_auth_frames: await forgedAuthFrames(),
    item4_malformed_frames: await malformedFlood(),
  };
  console.log(
    JSON.stringify(result, (k, v) => (k === "django" ? { ...v, total: sum(v as DjangoCalls) } : v), 2),
  );
} finally {
  for (const s of started) await s.stop();
  await django.dispose();
}
