import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../tests/helpers/net.ts";
import { BENCH_SECRET, directoryFor, type Pair } from "./fixtures.ts";

/**
 * The servers under test, each a child pinned to CPU 0 (the load generator gets CPU 1) with
 * a raised file limit. `exec` keeps the pid the server's own, so /proc/<pid> is the server.
 */

export const ROOT = join(import.meta.dir, "../..");
export const SERVER_CPU = "0";
export const CLIENT_CPU = "1";
export const FILE_LIMIT = 65536;

export interface RunningServer {
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

export async function startOurs(opts: {
  pairs: Pair[];
  synchronous?: "FULL" | "NORMAL" | "OFF";
  sqlitePath?: string;
  label?: string;
  extraArgs?: string[];
  /** Another checkout of the service (A/B comparisons); defaults to this one. */
  root?: string;
}): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "chat-bench-"));
  const directoryFile = join(dir, "directory.json");
  writeFileSync(directoryFile, JSON.stringify(directoryFor(opts.pairs)));
  const port = freePort();
  const env = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
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
    RATE_REST_PER_MIN: "1000000",
    MAX_CONNECTIONS_PER_USER: "10000",
    // Thousands of sockets from one address and few users: the upgrade budgets are off.
    UPGRADES_PER_MIN_PER_USER: "0",
    UPGRADES_PER_MIN_PER_ADDRESS: "0",
    HEARTBEAT_IDLE_S: "120",
  };
  const proc = Bun.spawn(pinned(SERVER_CPU, [process.execPath, ...(opts.extraArgs ?? []), "src/main.ts"]), {
    cwd: opts.root ?? ROOT,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const logs = collect(proc);
  const httpUrl = `http://127.0.0.1:${port}`;
  await waitHttp(`${httpUrl}/healthz`, proc, "our service", logs);
  return {
    kind: "ours",
    label: opts.label ?? `ours (${env.SQLITE_SYNCHRONOUS})`,
    pid: proc.pid,
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    httpUrl,
    dir,
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await proc.exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
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
  const proc = Bun.spawn(pinned(SERVER_CPU, [bin, "--config", configFile]), {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const logs = collect(proc);
  const httpUrl = `http://127.0.0.1:${port}`;
  await waitHttp(`${httpUrl}/health`, proc, "centrifugo", logs);
  return {
    kind: "centrifugo",
    label: "centrifugo (memory)",
    pid: proc.pid,
    port,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    httpUrl,
    dir,
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await proc.exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
