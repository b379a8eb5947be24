import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Service, type ServiceOverrides, startService } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger, type Logger, silentLogger } from "../../src/log.ts";
import { mintToken, TEST_SECRET } from "./tokens.ts";
import { TestSocket } from "./ws-client.ts";

/**
 * Starts the real service in this process on a free port with a temp SQLite file and the
 * test directory below, or as a child process (for kill -9 and restart tests).
 */

export const TEST_DIRECTORY = {
  users: [
    { id: 10, is_mentor: true },
    { id: 11, is_mentor: true },
    { id: 15, is_mentor: false },
    { id: 16, is_mentor: false },
    { id: 17, is_mentor: false },
    { id: 18, is_mentor: false },
  ],
  lessons: [
    { id: 5, course_id: 1, teacher_id: 10, student_ids: [15, 16] },
    { id: 6, course_id: 2, teacher_id: 11, student_ids: [17] },
  ],
};

/** Limits raised out of the way, for tests and benches that send in bulk on purpose. */
export const UNTHROTTLED: Record<string, string> = {
  RATE_MESSAGES_PER_S: "100000",
  RATE_MESSAGES_BURST: "100000",
  RATE_USER_MESSAGES_PER_S: "100000",
  RATE_USER_MESSAGES_BURST: "100000",
  UPGRADES_PER_MIN_PER_USER: "0",
  UPGRADES_PER_MIN_PER_ADDRESS: "0",
};

export function tempDir(prefix = "chat-test-"): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function testEnv(dir: string, env: Record<string, string> = {}): Record<string, string> {
  const directoryFile = join(dir, "directory.json");
  writeFileSync(directoryFile, JSON.stringify(TEST_DIRECTORY));
  return {
    PORT: "0",
    HOST: "127.0.0.1",
    SQLITE_PATH: join(dir, "chat.db"),
    JWT_SECRET: TEST_SECRET,
    DIRECTORY_FILE: directoryFile,
    LOG_LEVEL: "error",
    // Short, so tests that wait for "offline" wait little; tests/security/presence-churn.test.ts sets its own.
    PRESENCE_OFFLINE_DELAY_MS: "250",
    ...env,
  };
}

export interface TestService {
  url: string;
  wsUrl: string;
  dir: string;
  env: Record<string, string>;
  /** Opens a socket as `userId`; `query` adds/overrides query parameters. */
  connect(userId: number, query: Record<string, string | number>): Promise<TestSocket>;
  get(path: string, userId?: number, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

function helpers(url: string) {
  const wsUrl = `${url.replace("http", "ws")}/ws`;
  return {
    wsUrl,
    async connect(userId: number, query: Record<string, string | number>) {
      const params = new URLSearchParams({ token: await mintToken(userId) });
      for (const [k, v] of Object.entries(query)) params.set(k, String(v));
      return TestSocket.open(`${wsUrl}?${params}`);
    },
    async get(path: string, userId?: number, init: RequestInit = {}) {
      const headers = new Headers(init.headers);
      if (userId !== undefined) headers.set("Authorization", `Bearer ${await mintToken(userId)}`);
      return fetch(`${url}${path}`, { ...init, headers });
    },
  };
}

export async function startTestService(
  opts: { env?: Record<string, string>; dir?: string; logger?: Logger; overrides?: ServiceOverrides } = {},
): Promise<InProcessService> {
  const owned = opts.dir ? undefined : tempDir();
  const dir = opts.dir ?? owned!.path;
  const env = testEnv(dir, opts.env);
  const service = await startService(loadConfig(env), opts.logger ?? silentLogger, opts.overrides);
  return {
    url: service.url,
    app: service.app,
    dir,
    env,
    ...helpers(service.url),
    async stop() {
      await service.shutdown("test");
      owned?.remove();
    },
  };
}

export interface InProcessService extends TestService {
  /** The Hono app the server answers with (its `routes` list every REST route). */
  app: Service["app"];
}

/** Every child service still running; tests/setup.ts kills them after each file. */
const children = new Set<Bun.Subprocess>();

/**
 * Insurance against orphans: three child services outlived failing runs once (the path was not
 * reproduced; Bun's own cleanup covers plain failures and timeouts). The preload's afterAll calls
 * this after every file.
 */
export function killChildServices(): number {
  const n = children.size;
  for (const proc of children) proc.kill("SIGKILL");
  children.clear();
  return n;
}

export interface ChildService extends TestService {
  proc: Bun.Subprocess;
  logs: () => string;
  kill(signal?: NodeJS.Signals | number): Promise<number>;
}

/** Runs `bun src/main.ts` as a child; its port is read from its "listening" log line. */
export async function spawnService(opts: {
  dir: string;
  env?: Record<string, string>;
  entry?: string[];
  /** Working directory of the child; the repository root unless given. */
  cwd?: string;
}): Promise<ChildService> {
  const env = testEnv(opts.dir, { LOG_LEVEL: "info", ...opts.env });
  const proc = Bun.spawn(opts.entry ?? [process.execPath, "src/main.ts"], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdout: "pipe",
    stderr: "pipe",
    cwd: opts.cwd ?? join(import.meta.dir, "../.."),
  });
  children.add(proc);
  void proc.exited.then(() => children.delete(proc));
  let out = "";
  let started = false;
  const decoder = new TextDecoder();
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start within 15 s:\n${out}`)), 15_000);
    (async () => {
      // Keep reading after the port is known: a child whose pipe fills up would block.
      const reader = proc.stdout.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        out += decoder.decode(value);
        const m = started ? null : /"msg":"listening","port":(\d+)/.exec(out);
        if (m) {
          started = true;
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      }
      clearTimeout(timer);
      // A normal exit after start: leave stderr unread for the test that wants it.
      if (started) return;
      reject(
        new Error(
          `service exited before listening (code ${await proc.exited}):\n${out}\n${await new Response(proc.stderr).text()}`,
        ),
      );
    })();
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    dir: opts.dir,
    env,
    proc,
    logs: () => out,
    ...helpers(url),
    async kill(signal: NodeJS.Signals | number = "SIGTERM") {
      proc.kill(signal);
      return proc.exited;
    },
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

export { createLogger };
