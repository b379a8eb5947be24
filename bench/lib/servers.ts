import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../tests/helpers/net.ts";
import type { Target } from "../loadgen.ts";
import { BENCH_SECRET, directoryFor, type Pair } from "./fixtures.ts";

/**
 * The servers under test, each a child pinned to CPU 0 (the load generator gets CPU 1) with
 * a raised file limit. `exec` keeps the pid the server's own, so /proc/<pid> is the server.
 */

export const ROOT = join(import.meta.dir, "../..");
export const SERVER_CPU = "0";
export const CLIENT_CPU = "1";
export const FILE_LIMIT = 65536;

/** What the load generator needs to drive and measure a running server. */
export const targetOf = (s: RunningServer): Target => ({
  protocol: s.kind,
  wsUrl: s.wsUrl,
  httpUrl: s.httpUrl,
  pid: s.pid,
});

export interface RunningServer {
  /** The protocol the load generator speaks to it; the bare baseline speaks ours. */
  kind: "ours" | "centrifugo";
  label: string;
  pid: number;
  port: number;
  /** Where the load generator connects; ours takes conversation parameters on top. */
  wsUrl: string;
  httpUrl: string;
  dir: string;
  stop(): Promise<void>;
}

/** argv run through bash so `ulimit -n` applies, then exec'd under taskset. */
export function pinned(cpu: string, argv: string[]): string[] {
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  return ["bash", "-c", `ulimit -n ${FILE_LIMIT} 2>/dev/null || true; exec taskset -c ${cpu} ${quoted}`];
}

async function waitHttp(url: string, proc: Bun.Subprocess, what: string, logs: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null)
      throw new Error(`${what} exited (${proc.exitCode}) before listening:\n${logs()}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(50);
  }
  throw new Error(`${what} did not answer ${url} within 20 s:\n${logs()}`);
}

function collect(proc: Bun.Subprocess<"ignore", "pipe", "pipe">): () => string {
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    const reader = s.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      out = (out + d.decode(value)).slice(-20_000);
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return () => out;
}

/** Spawns `argv` pinned to the server CPU, waits for `healthPath`, and stops it with SIGTERM. */
async function launch(o: {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  port: number;
  dir: string;
  healthPath: string;
  wsPath: string;
  kind: RunningServer["kind"];
  label: string;
}): Promise<RunningServer> {
  const proc = Bun.spawn(pinned(SERVER_CPU, o.argv), {
    cwd: o.cwd,
    env: o.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const logs = collect(proc);
  const httpUrl = `http://127.0.0.1:${o.port}`;
  await waitHttp(`${httpUrl}${o.healthPath}`, proc, o.label, logs);
  return {
    kind: o.kind,
    label: o.label,
    pid: proc.pid,
    port: o.port,
    wsUrl: `ws://127.0.0.1:${o.port}${o.wsPath}`,
    httpUrl,
    dir: o.dir,
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await proc.exited;
      clearTimeout(timer);
      rmSync(o.dir, { recursive: true, force: true });
    },
  };
}

const baseEnv = () => ({ PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" });

export async function startOurs(opts: {
  pairs: Pair[];
  synchronous?: "FULL" | "NORMAL" | "OFF";
  sqlitePath?: string;
  label?: string;
  extraArgs?: string[];
  /** Another checkout of the service (A/B comparisons); defaults to this one. */
  root?: string;
  /** Settings on top of the bench's (BENCH_OURS_ENV comes last). */
  env?: Record<string, string>;
}): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "chat-bench-"));
  const directoryFile = join(dir, "directory.json");
  writeFileSync(directoryFile, JSON.stringify(directoryFor(opts.pairs)));
  const port = freePort();
  const env = {
    ...baseEnv(),
    PORT: String(port),
    HOST: "127.0.0.1",
    SQLITE_PATH: opts.sqlitePath ?? join(dir, "chat.db"),
    SQLITE_SYNCHRONOUS: opts.synchronous ?? "FULL",
    JWT_SECRET: BENCH_SECRET,
    DIRECTORY_FILE: directoryFile,
    LOG_LEVEL: "warn",
    RATE_MESSAGES_PER_S: "100000",
    RATE_MESSAGES_BURST: "100000",
    RATE_USER_MESSAGES_PER_S: "100000",
    RATE_USER_MESSAGES_BURST: "100000",
    RATE_REST_PER_MIN: "1000000",
    MAX_CONNECTIONS_PER_USER: "10000",
    // Thousands of sockets from one address and few users: the upgrade budgets are off.
    UPGRADES_PER_MIN_PER_USER: "0",
    UPGRADES_PER_MIN_PER_ADDRESS: "0",
    HEARTBEAT_IDLE_S: "120",
    ...opts.env,
    // Extra settings for ours, e.g. BENCH_OURS_ENV='{"SQLITE_SYNC_THREAD":"true"}'.
    ...(JSON.parse(process.env.BENCH_OURS_ENV ?? "{}") as Record<string, string>),
  };
  return launch({
    argv: [process.execPath, ...(opts.extraArgs ?? []), "src/main.ts"],
    cwd: opts.root ?? ROOT,
    env,
    port,
    dir,
    healthPath: "/healthz",
    wsPath: "/ws",
    kind: "ours",
    label: opts.label ?? `ours (${env.SQLITE_SYNCHRONOUS})`,
  });
}

/** bench/bare-server.ts: the transport alone, speaking our protocol (issue #13). */
export function startBare(opts: { pairs: Pair[] }): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "bare-bench-"));
  const directoryFile = join(dir, "directory.json");
  writeFileSync(directoryFile, JSON.stringify(directoryFor(opts.pairs)));
  const port = freePort();
  return launch({
    argv: [process.execPath, "bench/bare-server.ts"],
    cwd: ROOT,
    env: {
      ...baseEnv(),
      PORT: String(port),
      HOST: "127.0.0.1",
      DIRECTORY_FILE: directoryFile,
      HEARTBEAT_IDLE_S: "120",
    },
    port,
    dir,
    healthPath: "/healthz",
    wsPath: "/ws",
    kind: "ours",
    label: "bare Bun.serve",
  });
}

export async function startCentrifugo(bin: string): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "centrifugo-bench-"));
  const port = freePort();
  const config = {
    http_server: { address: "127.0.0.1", port },
    log: { level: "error" },
    engine: { type: "memory" },
    health: { enabled: true },
    usage_stats: { disabled: true },
    client: {
      token: { hmac_secret_key: BENCH_SECRET },
      allowed_origins: ["*"],
    },
    // One channel per conversation; clients subscribe and publish themselves, nothing kept.
    channel: {
      without_namespace: {
        allow_subscribe_for_client: true,
        allow_publish_for_subscriber: true,
      },
    },
  };
  const configFile = join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  return launch({
    argv: [bin, "--config", configFile],
    cwd: dir,
    env: baseEnv(),
    port,
    dir,
    healthPath: "/health",
    wsPath: "/connection/websocket",
    kind: "centrifugo",
    label: "centrifugo (memory)",
  });
}
