import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { envSchema } from "../../src/config.ts";
import { runProgram } from "../helpers/run.ts";
import { type ChildService, spawnService, tempDir } from "../helpers/service.ts";

/**
 * The shipped artefact: `npm run build` (the script the Dockerfile runs) makes one executable,
 * which is copied away from the repository and run there, so nothing in node_modules can help it.
 */

const ROOT = join(import.meta.dir, "../..");
const work = tempDir("chat-binary-");
const binDir = join(work.path, "bin");
const dataDir = join(work.path, "data");
const binary = join(binDir, "lesson-chat");
const children: ChildService[] = [];

async function start(): Promise<ChildService> {
  // The sync thread on: the checkpoint thread is a second entry point of the build, checked below.
  const child = await spawnService({
    dir: dataDir,
    entry: [binary],
    cwd: binDir,
    env: { SQLITE_SYNC_THREAD: "true" },
  });
  children.push(child);
  return child;
}

beforeAll(async () => {
  mkdirSync(binDir, { recursive: true });
  mkdirSync(dataDir, { recursive: true });
  const build = await runProgram([process.execPath, "run", "build"]);
  if (build.code !== 0) throw new Error(`npm run build failed (${build.code}):\n${build.out}\n${build.err}`);
  copyFileSync(join(ROOT, "dist/lesson-chat"), binary);
  chmodSync(binary, 0o755);
}, 180_000);

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null) await c.kill("SIGKILL");
  work.remove();
});

describe("the compiled binary", () => {
  test("is one executable file", () => {
    expect(existsSync(binary)).toBe(true);
    expect(statSync(binary).size).toBeGreaterThan(1_000_000);
    expect(statSync(binary).mode & 0o111).not.toBe(0);
  });

  test("answers --help and refuses unknown arguments", async () => {
    const help = await runProgram([binary, "--help"], { cwd: binDir });
    expect(help.code).toBe(0);
    expect(help.out).toContain("--healthcheck");
    for (const name of Object.keys(envSchema.shape))
      expect(help.out).toMatch(new RegExp(`^  ${name} +default: `, "m"));
    const bad = await runProgram([binary, "--frobnicate"], { cwd: binDir });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("unknown arguments: --frobnicate");
  });

  test("--version names the commit it was built from, with no git at hand", async () => {
    const head = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT })
      .stdout.toString()
      .trim();
    expect(head).toMatch(/^[0-9a-f]{7,}$/);
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const res = await runProgram([binary, "--version"], { cwd: binDir, env: { PATH: "/nonexistent" } });
    expect(res.code).toBe(0);
    expect(res.out).toBe(`lesson-chat ${version} (commit ${head})\n`);
  });

  test("serves chat, shuts down cleanly on SIGTERM and keeps its data across a restart", async () => {
    const first = await start();
    const mentor = await first.connect(10, { lesson_id: 5, student_id: 15 });
    const student = await first.connect(15, { lesson_id: 5 });
    const ready = await mentor.next("ready");
    expect((await student.next("ready")).conversation_id).toBe(ready.conversation_id);

    mentor.send({ type: "message", text: "hello from the binary", client_id: "bin-1" });
    const ack = await mentor.next("ack", 10_000);
    const received = await student.next("message", 10_000);
    expect(received.id).toBe(ack.id);
    expect(received.text).toBe("hello from the binary");

    const path = `/messages?conversation_id=${ready.conversation_id}`;
    const before = await first.get(path, 15);
    expect(before.status).toBe(200);
    expect((await before.json()).map((m: { id: string }) => m.id)).toEqual([ack.id]);

    const port = new URL(first.url).port;
    const healthy = await runProgram([binary, "--healthcheck"], {
      cwd: binDir,
      env: { PORT: port, HOST: "127.0.0.1" },
    });
    expect(healthy).toMatchObject({ code: 0 });
    expect(healthy.out).toContain("answered 200");

    expect(await first.kill("SIGTERM")).toBe(0);
    for (const sock of [mentor, student]) {
      const closed = await sock.closedWith(10_000);
      expect(closed.code).toBe(1001);
      expect(closed.reason).toContain("reconnect");
    }
    expect(first.logs()).toContain('"msg":"stopped"');
    // The checkpoint thread is a second entry point of the build: it started, and it closed its
    // connection before the writer's, whose close folded the WAL back and removed it.
    expect(first.logs()).not.toContain("checkpoint thread failed");
    expect(existsSync(join(dataDir, "chat.db-wal"))).toBe(false);

    const down = await runProgram([binary, "--healthcheck"], {
      cwd: binDir,
      env: { PORT: port, HOST: "127.0.0.1" },
    });
    expect(down.code).toBe(1);
    expect(down.err).toContain("did not answer");

    const second = await start();
    const after = await second.get(path, 10);
    expect(after.status).toBe(200);
    const messages = await after.json();
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ id: ack.id, text: "hello from the binary", sender_id: 10 });
    expect(await second.kill("SIGTERM")).toBe(0);
  }, 60_000);
});
