/**
 * Starts the test stand-in of the platform's Django site (tests/django) for `bun test`.
 *
 * It is a real Django 3.2 + DRF + SimpleJWT process, not a mock, so the chat service meets the same
 * token format, device-cookie rule and status codes as in production. A failure to start throws
 * with the process output: a test that needs Django fails and says why, it never skips.
 */

import { afterAll, beforeAll } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "./net.ts";
import { type InProcessService, startTestService } from "./service.ts";
import { TestSocket } from "./ws-client.ts";

// Debian's python carries Django; the pyenv python3 on PATH does not.
const PYTHON = "/usr/bin/python3";
const DJANGO_DIR = join(import.meta.dir, "..", "django");
const START_DEADLINE_MS = 30_000;
const TAIL_CHARS = 8_000;

/** The fixed cast created by `manage.py seed` (tests/django/platform_app/management/commands/seed.py). */
export const DJANGO_CAST = {
  /** Every seeded user logs in as `u<id>` / `pw-<id>`. */
  mentors: {
    /** Teaches course 1 (lessons 5 and 7); mentor RECORD id 500. */
    m10: { userId: 10, mentorRecordId: 500, courseId: 1, lessonIds: [5, 7] },
    /** Teaches course 2 (lesson 6); mentor RECORD id 501. */
    m11: { userId: 11, mentorRecordId: 501, courseId: 2, lessonIds: [6] },
  },
  students: {
    /** Active in course 1. */
    s15: { userId: 15, courseId: 1, active: true },
    /** Active in course 1. */
    s16: { userId: 16, courseId: 1, active: true },
    /** Enrolled in course 1 but inactive: check-access refuses. */
    s17: { userId: 17, courseId: 1, active: false },
    /** Not enrolled anywhere. */
    s18: { userId: 18, courseId: null, active: false },
    /** Active in course 2. */
    s19: { userId: 19, courseId: 2, active: true },
  },
  lessons: {
    5: { courseId: 1, teacherUserId: 10, mentorRecordId: 500 },
    6: { courseId: 2, teacherUserId: 11, mentorRecordId: 501 },
    7: { courseId: 1, teacherUserId: 10, mentorRecordId: 500 },
  },
  /** Ids that exist nowhere, for 404 cases. */
  missingUserId: 999,
  missingLessonId: 999,
} as const;

export function djangoUsername(userId: number): string {
  return `u${userId}`;
}

export function djangoPassword(userId: number): string {
  return `pw-${userId}`;
}

export type DjangoCallKind = "users" | "lesson_detail" | "check_access" | "token" | "token_refresh" | "other";
export type DjangoCalls = Record<DjangoCallKind, number>;

export interface DjangoLogin {
  userId: number;
  access: string;
  refresh: string;
  deviceId: string;
  /** `device_id=<id>`, ready for a `Cookie` header. */
  cookie: string;
}

export interface DjangoHandle {
  /** `http://127.0.0.1:<port>`, no trailing slash; what the chat service takes as DJANGO_BASE_URL. */
  readonly baseUrl: string;
  readonly port: number;
  /** The site's SECRET_KEY, which signs the HS256 tokens: the chat service's JWT_SECRET. */
  readonly secretKey: string;
  readonly dbPath: string;
  /** The server's pid, or undefined while stopped. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Logs in as a seeded user (`u<id>` / `pw-<id>`); replaces that user's recorded device. */
  login(userId: number): Promise<DjangoLogin>;
  /** Requests seen since the last reset, by kind; `/__test__/*` itself is not counted. */
  calls(): Promise<DjangoCalls>;
  resetCalls(): Promise<void>;
  /** Kills the server but keeps its database, so `start()` simulates recovery from an outage. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and database (no-op while running). */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections are accepted by the kernel but never answered. */
  pause(): void;
  /** Undoes `pause()`. */
  resume(): void;
  /** Stops the server and deletes its temp dir. */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
  /** The last few KB of the server's stdout+stderr, for diagnosing a failing test. */
  logTail(): string;
}

/** How the chat service checks a Django token: with the site's key first (JWT_SECRET), or only by asking Django. */
export type VerifyMode = "local" | "remote";

/**
 * One Django site for a test file (started in beforeAll) and chat services that use it as their
 * identity backend, each with `defaults` and its own `env` on top. In afterAll the services stop
 * before the site does.
 */
export function djangoSite(defaults: Record<string, string> = {}) {
  const started: InProcessService[] = [];
  const site = {
    django: undefined as unknown as DjangoHandle,
    async chatService(mode: VerifyMode, env: Record<string, string> = {}): Promise<InProcessService> {
      const svc = await startTestService({
        env: {
          DJANGO_BASE_URL: site.django.baseUrl,
          // testEnv sets both for the directory backend; empty means unset.
          DIRECTORY_FILE: "",
          JWT_SECRET: mode === "local" ? site.django.secretKey : "",
          ...defaults,
          ...env,
        },
      });
      started.push(svc);
      return svc;
    },
  };
  beforeAll(async () => {
    site.django = await startDjango();
  });
  afterAll(async () => {
    for (const s of started) await s.stop();
    await site.django?.dispose();
  });
  return site;
}

/** `n` chat sockets opened as this login (token and device cookie), each past its `ready`. */
export async function socketsAs(
  serviceUrl: string,
  login: DjangoLogin,
  query: string,
  n: number,
): Promise<TestSocket[]> {
  const url = `${serviceUrl.replace("http", "ws")}/ws?${query}&token=${login.access}`;
  const sockets = await Promise.all(
    Array.from({ length: n }, () => TestSocket.open(url, { headers: { Cookie: login.cookie } })),
  );
  await Promise.all(sockets.map((s) => s.next("ready")));
  return sockets;
}

/** `Authorization` and `Cookie` headers for a Django call made as this login. */
export function djangoAuthHeaders(login: DjangoLogin): Record<string, string> {
  return { Authorization: `Bearer ${login.access}`, Cookie: login.cookie };
}

let pythonChecked = false;

function checkPython(): void {
  if (pythonChecked) return;
  const hint =
    "apt-get install python3-django python3-djangorestframework python3-djangorestframework-simplejwt";
  let result: ReturnType<typeof Bun.spawnSync>;
  try {
    result = Bun.spawnSync([PYTHON, "-c", "import django, rest_framework, rest_framework_simplejwt"], {
      env: pythonEnv({}),
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (err) {
    throw new Error(`Django test backend needs ${PYTHON} (${String(err)}); run: ${hint}`);
  }
  if (result.exitCode !== 0) {
    throw new Error(
      `Django test backend: ${PYTHON} cannot import django/rest_framework/rest_framework_simplejwt ` +
        `(${result.stderr?.toString().trim()}); run: ${hint}`,
    );
  }
  pythonChecked = true;
}

function pythonEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    // pyenv's variables would point Debian's interpreter at the wrong site-packages.
    if (value === undefined || key === "PYTHONPATH" || key === "PYTHONHOME") continue;
    env[key] = value;
  }
  return { ...env, PYTHONUNBUFFERED: "1", DJANGO_SETTINGS_MODULE: "chatsite.settings", ...extra };
}

function randomSecret(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
}

/** Keeps only the end of a stream: enough to explain a failure without unbounded memory. */
class Tail {
  private text = "";
  append(chunk: string): void {
    this.text = (this.text + chunk).slice(-TAIL_CHARS);
  }
  toString(): string {
    return this.text;
  }
}

async function drain(stream: ReadableStream<Uint8Array>, tail: Tail): Promise<void> {
  // An unread pipe fills up after 64 KB and then blocks the server mid-request.
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    tail.append(decoder.decode(value, { stream: true }));
  }
}

const TEMP_PREFIX = "chat-django-";
const OWNER_FILE = "owner.pid";

/**
 * bun test runs no exit hooks, so a test process that dies or forgets `dispose()` leaves its temp
 * dir behind (its server dies with it: see manage.py). Remove the dirs of test processes that are gone.
 */
function sweepStaleTempDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    try {
      const owner = Number(readFileSync(join(dir, OWNER_FILE), "utf8"));
      if (isAlive(owner)) continue;
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Not ours, or being created right now: leave it.
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function makeTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}

const DB_FILE = "platform.sqlite3";
let template: Promise<string> | undefined;

/**
 * Migrating and seeding costs about a second and gives the same file every time (nothing in it
 * depends on the secret key), so do it once per test process and copy the result.
 */
function seededTemplate(): Promise<string> {
  template ??= (async () => {
    const dbPath = join(makeTempDir(), DB_FILE);
    const proc = Bun.spawn([PYTHON, "manage.py", "seed"], {
      cwd: DJANGO_DIR,
      // Settings demand a key; the seed does not use it.
      env: pythonEnv({ DJANGO_SECRET_KEY: "seed-only", DJANGO_DB_PATH: dbPath }),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, out, err] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    if (code !== 0) {
      throw new Error(
        `Django test backend: "manage.py seed" exited with ${code}:\n${(out + err).slice(-TAIL_CHARS)}`,
      );
    }
    return dbPath;
  })();
  // A failed seed is reported to every caller, not cached: the next startDjango() tries again.
  template.catch(() => {
    template = undefined;
  });
  return template;
}

type PipedProcess = Subprocess<"ignore", "pipe", "pipe">;

class DjangoServer implements DjangoHandle {
  readonly baseUrl: string;
  readonly dbPath: string;
  private proc: PipedProcess | undefined;
  private paused = false;
  private tail = new Tail();
  private disposed = false;
  private readonly instanceId = crypto.randomUUID();

  constructor(
    readonly port: number,
    readonly secretKey: string,
    private readonly tempDir: string,
    private readonly languagePrefix = "",
  ) {
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.dbPath = join(tempDir, DB_FILE);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  logTail(): string {
    return this.tail.toString();
  }

  private env(): Record<string, string> {
    return pythonEnv({
      DJANGO_SECRET_KEY: this.secretKey,
      DJANGO_DB_PATH: this.dbPath,
      DJANGO_PARENT_PID: String(process.pid),
      DJANGO_INSTANCE_ID: this.instanceId,
      CHAT_LANGUAGE_PREFIX: this.languagePrefix,
    });
  }

  async start(): Promise<void> {
    if (this.disposed) throw new Error("Django test backend: start() after dispose()");
    if (this.running) return;

    this.tail = new Tail();
    const proc = Bun.spawn([PYTHON, "manage.py", "serve", `127.0.0.1:${this.port}`, "--noreload"], {
      cwd: DJANGO_DIR,
      env: this.env(),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.proc = proc;
    this.paused = false;
    void drain(proc.stdout, this.tail);
    void drain(proc.stderr, this.tail);

    const deadline = Date.now() + START_DEADLINE_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        await proc.exited;
        // Let the drains catch the last words ("port is already in use", a traceback, ...).
        await Bun.sleep(50);
        throw new Error(
          `Django test backend exited during start (code ${proc.exitCode ?? proc.signalCode}):\n${this.logTail()}`,
        );
      }
      try {
        const res = await fetch(`${this.baseUrl}/__test__/calls`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        if (res.ok && res.headers.get("x-test-instance") === this.instanceId) return;
      } catch {
        // Not listening yet.
      }
      await Bun.sleep(100);
    }
    await this.stop();
    throw new Error(
      `Django test backend did not answer on ${this.baseUrl} within ${START_DEADLINE_MS} ms:\n${this.logTail()}`,
    );
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    // A stopped process keeps SIGTERM pending until it is continued.
    if (this.paused) proc.kill("SIGCONT");
    this.paused = false;
    const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(5_000).then(() => false)]);
    if (!exited) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  }

  pause(): void {
    if (!this.proc || !this.running) throw new Error("Django test backend: pause() while not running");
    this.proc.kill("SIGSTOP");
    this.paused = true;
  }

  resume(): void {
    if (!this.proc || !this.paused) return;
    this.proc.kill("SIGCONT");
    this.paused = false;
  }

  async dispose(): Promise<void> {
    await this.stop();
    this.disposed = true;
    rmSync(this.tempDir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  async login(userId: number): Promise<DjangoLogin> {
    const res = await fetch(`${this.baseUrl}/api/token/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: djangoUsername(userId), password: djangoPassword(userId) }),
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`Django login as user ${userId} failed: ${res.status} ${body}`);
    const { access, refresh } = JSON.parse(body) as { access: string; refresh: string };
    const deviceId = res.headers
      .getSetCookie()
      .map((c) => /^device_id=([^;]*)/.exec(c)?.[1])
      .find((v) => v !== undefined);
    if (!deviceId) throw new Error(`Django login as user ${userId} set no device_id cookie`);
    return { userId, access, refresh, deviceId, cookie: `device_id=${deviceId}` };
  }

  async calls(): Promise<DjangoCalls> {
    const res = await fetch(`${this.baseUrl}/__test__/calls`);
    if (!res.ok) throw new Error(`Django /__test__/calls answered ${res.status}`);
    return (await res.json()) as DjangoCalls;
  }

  async resetCalls(): Promise<void> {
    const res = await fetch(`${this.baseUrl}/__test__/reset`, { method: "POST" });
    if (!res.ok) throw new Error(`Django /__test__/reset answered ${res.status}`);
    await res.arrayBuffer();
  }
}

/**
 * Migrates and seeds a fresh SQLite database in a temp dir, starts the server (`manage.py serve`, a
 * threaded runserver) on a free loopback port and resolves once it answers. Call `dispose()` when
 * done (afterAll).
 */
/**
 * `languagePrefix` ("uz") makes the site answer like the platform's real one: the API lives
 * under `/<prefix>/…` and an unprefixed path gets a 302 there (`baseUrl` stays the bare origin).
 */
export async function startDjango(
  opts: { secretKey?: string; languagePrefix?: string } = {},
): Promise<DjangoHandle> {
  checkPython();
  if (opts.secretKey === "") throw new Error("startDjango: secretKey must not be empty");
  const secretKey = opts.secretKey ?? randomSecret();
  sweepStaleTempDirs();
  const templateDb = await seededTemplate();
  const tempDir = makeTempDir();
  copyFileSync(templateDb, join(tempDir, DB_FILE));
  // Another process may grab the probed port before runserver binds it; try a fresh one then.
  for (let attempt = 1; ; attempt++) {
    const server = new DjangoServer(freePort(), secretKey, tempDir, opts.languagePrefix);
    try {
      await server.start();
      return server;
    } catch (err) {
      await server.stop();
      const portTaken = server.logTail().includes("already in use");
      if (!portTaken || attempt >= 3) {
        rmSync(tempDir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}
