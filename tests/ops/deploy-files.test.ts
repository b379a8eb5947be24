import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { validate } from "dockerfile-utils";
import { loadConfig } from "../../src/config.ts";

/**
 * No Docker engine or fly.io account here, so the deployment files are checked against the
 * service they ship: the build script the binary test runs, the config defaults, the flags.
 */

const ROOT = join(import.meta.dir, "../..");
const read = (name: string) => readFileSync(join(ROOT, name), "utf8");
const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string> };
const defaults = loadConfig({});

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions per stage, continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instruction[][] {
  const joined = text
    .split("\n")
    .filter((l) => !/^\s*#/.test(l))
    .join("\n")
    .replace(/\\\n/g, " ");
  const stages: Instruction[][] = [];
  for (const line of joined.split("\n")) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const ins = { keyword: m[1]!.toUpperCase(), args: m[2]!.replace(/\s+/g, " ").trim() };
    if (ins.keyword === "FROM") stages.push([]);
    stages.at(-1)?.push(ins);
  }
  return stages;
}

/** `ENV A=1 B=2` (the only form used) as a map. */
function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of stage.filter((i) => i.keyword === "ENV")) {
    for (const [, k, v] of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[k!] = v!.replace(/^"|"$/g, "");
  }
  return env;
}

const args = (stage: Instruction[], keyword: string) =>
  stage.filter((i) => i.keyword === keyword).map((i) => i.args);

describe("Dockerfile", () => {
  const text = read("Dockerfile");
  const stages = parseDockerfile(text);
  const build = stages[0]!;
  const runtime = stages.at(-1)!;
  const outfile = /--outfile\s+(\S+)/.exec(pkg.scripts.build ?? "")?.[1];

  test("has no lint findings (dockerfile-utils, the VS Code Docker validator)", () => {
    const findings = validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(findings).toEqual([]);
  });

  test("builds with npm ci and the same `npm run build` the binary test runs", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const runs = args(build, "RUN").join(" && ");
    expect(runs).toContain("npm ci");
    expect(runs).toContain("npm run build");
    expect(pkg.scripts.build).toContain("--compile");
    expect(outfile).toBe("dist/lesson-chat");
  });

  test("ships only the built executable on a glibc base, run by a non-root user", () => {
    const from = args(runtime, "FROM")[0]!;
    expect(from).not.toMatch(/alpine|musl/);
    expect(from).not.toMatch(/^(node|oven\/bun)/);
    const copies = args(runtime, "COPY");
    expect(copies.some((c) => c.includes(`--from=build`) && c.includes(`/${outfile}`))).toBe(true);
    expect(copies.join(" ")).not.toContain("node_modules");
    const user = args(runtime, "USER").at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
  });

  test("listens on the PORT default, keeps SQLite on the volume, and its ENV is a valid config", () => {
    const env = envOf(runtime);
    expect(args(runtime, "EXPOSE")).toEqual([String(defaults.PORT)]);
    expect(env.PORT).toBe(String(defaults.PORT));
    expect(env.HOST).toBe("0.0.0.0");
    const volumes = args(runtime, "VOLUME");
    expect(volumes).toEqual(["/data"]);
    expect(env.SQLITE_PATH).toBe("/data/chat.db");
    expect(() => loadConfig(env)).not.toThrow();
  });

  test("stops with SIGTERM and health-checks with the binary's own --healthcheck", () => {
    expect(args(runtime, "STOPSIGNAL")).toEqual(["SIGTERM"]);
    const [entrypoint] = args(runtime, "ENTRYPOINT").map((a) => JSON.parse(a) as string[]);
    expect(entrypoint).toEqual(["/app/lesson-chat"]);
    const health = args(runtime, "HEALTHCHECK")[0]!;
    expect(health).toMatch(/--interval=\S+/);
    const cmd = JSON.parse(health.slice(health.indexOf("CMD ") + 4)) as string[];
    expect(cmd).toEqual([entrypoint![0]!, "--healthcheck"]);
  });

  test(".dockerignore keeps local state and build output out of the context", () => {
    const ignored = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    for (const p of ["node_modules", "dist", "data", "*.db", ".git"]) expect(ignored).toContain(p);
    for (const needed of ["src", "examples", "package.json", "package-lock.json"]) {
      expect(ignored).not.toContain(needed);
    }
  });
});

describe("fly.toml", () => {
  const text = read("fly.toml");
  // biome-ignore lint/suspicious/noExplicitAny: a parsed TOML document, checked field by field below
  const fly = Bun.TOML.parse(text) as any;
  const env = fly.env as Record<string, string>;
  const seconds = (d: string) => {
    const m = /^(\d+)(ms|s|m)$/.exec(d);
    if (!m) throw new Error(`not a duration: ${d}`);
    return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 } as const)[m[2] as "ms" | "s" | "m"];
  };

  test("its [env] is a valid configuration on the Dockerfile's port", () => {
    const config = loadConfig(env);
    expect(fly.http_service.internal_port).toBe(8080);
    expect(config.PORT).toBe(fly.http_service.internal_port);
    expect(args(parseDockerfile(read("Dockerfile")).at(-1)!, "EXPOSE")).toEqual([String(config.PORT)]);
  });

  test("keeps WebSocket machines running and balances by connections", () => {
    expect([false, "off"]).toContain(fly.http_service.auto_stop_machines);
    expect(fly.http_service.min_machines_running).toBeGreaterThanOrEqual(1);
    expect(fly.http_service.concurrency.type).toBe("connections");
    expect(fly.http_service.concurrency.hard_limit).toBeGreaterThan(fly.http_service.concurrency.soft_limit);
  });

  test("mounts a volume at /data and SQLite lives on it", () => {
    expect(fly.mounts.destination).toBe("/data");
    expect(fly.mounts.source).toMatch(/^\w+$/);
    expect(env.SQLITE_PATH!.startsWith(`${fly.mounts.destination}/`)).toBe(true);
  });

  test("health-checks /healthz and routes by /readyz", () => {
    const paths = (fly.http_service.checks as Array<{ path: string; method: string }>).map((c) => c.path);
    expect(paths).toContain("/healthz");
    expect(paths).toContain("/readyz");
  });

  test("stops with SIGTERM and waits longer than the service's shutdown grace", () => {
    const config = loadConfig(env);
    expect(fly.kill_signal).toBe("SIGTERM");
    expect(seconds(fly.kill_timeout) * 1000).toBeGreaterThan(config.SHUTDOWN_GRACE_MS);
    expect(config.SHUTDOWN_DRAIN_DELAY_MS).toBeGreaterThan(0);
  });

  test("documents the secrets and never sets them in [env]", () => {
    for (const secret of ["MONGO_URI", "JWT_SECRET", "DJANGO_BASE_URL", "REDIS_URL"]) {
      expect(env[secret]).toBeUndefined();
      expect(text).toMatch(new RegExp(`^#\\s+${secret}\\s`, "m"));
    }
  });
});
