import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { envSchema } from "../../src/config.ts";
import { runProgram } from "../helpers/run.ts";

/**
 * `lesson-chat --help` and `--version` from source: the help is the configuration reference on
 * a machine without the README, so every variable of the schema must be in it with a meaning.
 */

const ROOT = join(import.meta.dir, "../..");

const main = (args: string[], env: Record<string, string> = {}) =>
  runProgram([process.execPath, "src/main.ts", ...args], { cwd: ROOT, env });

describe("--help", () => {
  test("every variable of the schema has a description", () => {
    for (const [name, field] of Object.entries(envSchema.shape)) {
      expect({ name, description: (field as z.ZodType).description ?? "" }).toMatchObject({
        name,
        description: expect.stringMatching(/\S{3}/),
      });
    }
  });

  test("lists every variable with its default and meaning, and the flags", async () => {
    const { code, out } = await main(["--help"]);
    expect(code).toBe(0);
    for (const flag of ["--healthcheck", "--help", "--version"]) expect(out).toContain(flag);
    expect(out).not.toContain("(undocumented)");
    for (const [name, field] of Object.entries(envSchema.shape)) {
      const entry = new RegExp(`^  ${name} +default: .+\\n {6}(.+)$`, "m").exec(out);
      expect(entry?.[1]).toBe((field as z.ZodType).description);
    }
    expect(out).toMatch(/^ {2}PORT +default: 8080$/m);
    expect(out).toMatch(/^ {2}SQLITE_SYNCHRONOUS +default: FULL; one of FULL, NORMAL, OFF$/m);
    expect(out).toMatch(/^ {2}DJANGO_FORWARD_COOKIES +default: device_id$/m);
    expect(out).toMatch(/^ {2}MONGO_URI +default: unset$/m);
  });

  test("-h is --help, and unknown arguments still exit 2 with the usage", async () => {
    expect((await main(["-h"])).out).toContain("DEMO_MINT_PUBLIC");
    const bad = await main(["--frobnicate"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("unknown arguments: --frobnicate");
    expect(bad.err).toContain("usage: lesson-chat");
  });
});

describe("--version", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

  test("from source names the checkout's commit", async () => {
    const head = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: ROOT })
      .stdout.toString()
      .trim();
    expect(head).toMatch(/^[0-9a-f]{7,}$/);
    const { code, out } = await main(["--version"]);
    expect(code).toBe(0);
    expect(out).toBe(`lesson-chat ${pkg.version} (commit ${head})\n`);
    expect((await main(["-V"])).out).toBe(out);
  });

  test("without git it says unknown instead of failing", async () => {
    const { code, out } = await main(["--version"], { PATH: "/nonexistent" });
    expect(code).toBe(0);
    expect(out).toBe(`lesson-chat ${pkg.version} (commit unknown)\n`);
  });
});
