/**
 * Real MongoDB-wire server for tests: FerretDB v1.24 on its SQLite backend, one process per handle,
 * or an external server when MONGO_URI is set.
 *
 * A server that cannot be started makes the caller throw with the reason; tests never skip, because a
 * silently skipped durability test is worse than a red one.
 */

import { afterAll, beforeAll } from "bun:test";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { MongoClient, type MongoClientOptions } from "mongodb";
import { freePort } from "./net.ts";

export const INSTALL_HINT =
  "Install FerretDB v1.24.2 with `bash scripts/install-ferretdb.sh` (builds it into $(go env GOPATH)/bin/ferretdb; " +
  "a plain `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` produces a binary that panics at start-up " +
  "because build/version/version.txt is missing), or set FERRETDB_BIN to a working binary, " +
  "or set MONGO_URI to use an already running server.";

const READY_DEADLINE_MS = 20_000;
const STOP_GRACE_MS = 5_000;

export interface MongoHandle {
  /** mongodb://host:port/ with no database; use `dbName` for isolation. */
  readonly uri: string;
  readonly host: string;
  readonly port: number;
  /** Unique per handle so tests sharing an external server do not see each other's data. */
  readonly dbName: string;
  /** True when MONGO_URI points at a server this handle does not own: stop/start/kill then throw. */
  readonly external: boolean;
  /** FerretDB's combined stdout/stderr; null for an external server. */
  readonly logPath: string | null;
  /**
   * A connected MongoClient owned by the caller. `destroy()` closes any the caller forgot, so a failing
   * test cannot leak sockets that keep the runner alive.
   */
  client(options?: MongoClientOptions): Promise<MongoClient>;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
  stop(): Promise<void>;
  /** Restarts on the same port and data dir (an outage, not a new server); resolves once it answers ping. */
  start(): Promise<void>;
  /** SIGKILL: a crash with no chance to flush or close connections. */
  kill(): Promise<void>;
  /** Stops the server and deletes its data; for an external server drops `dbName` instead. */
  destroy(): Promise<void>;
  /** Last lines of the server log, for assertion messages. */
  logTail(lines?: number): string;
}

export function resolveFerretdbBinary(): string {
  const fromEnv = process.env.FERRETDB_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`FERRETDB_BIN=${fromEnv} does not exist. ${INSTALL_HINT}`);
    return fromEnv;
  }
  const onPath = Bun.which("ferretdb");
  if (onPath) return onPath;
  const goBin = join(homedir(), "go", "bin", "ferretdb");
  if (existsSync(goBin)) return goBin;
  throw new Error(
    `ferretdb binary not found (FERRETDB_BIN unset, not on PATH, not at ${goBin}). ${INSTALL_HINT}`,
  );
}

function randomDbName(): string {
  return `t_${randomBytes(6).toString("hex")}`;
}

const live = new Set<Subprocess>();
let exitHookInstalled = false;

// If the runner dies mid-test (uncaught error, Ctrl-C), afterAll never runs; without this, orphaned
// ferretdb processes would keep ports and temp dirs forever.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const proc of live) {
      try {
        proc.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

async function canConnect(uri: string): Promise<boolean> {
  const url = new URL(uri);
  try {
    const socket = await Bun.connect({
      hostname: url.hostname,
      port: url.port ? Number(url.port) : 27017,
      socket: { data() {} },
    });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

async function waitForPing(uri: string, deadline: number, exited?: Promise<number>): Promise<void> {
  let lastError: unknown;
  let exitCode: number | null = null;
  exited?.then((code) => {
    exitCode = code;
  });
  while (Date.now() < deadline) {
    if (exitCode !== null) throw new Error(`process exited with code ${exitCode} before answering ping`);
    // A refused connection makes the driver sit out its whole serverSelectionTimeoutMS, so probe the
    // port cheaply first and only ping once something is listening.
    if (!(await canConnect(uri))) {
      await Bun.sleep(20);
      continue;
    }
    const client = new MongoClient(uri, {
      serverSelectionTimeoutMS: 500,
      connectTimeoutMS: 500,
      socketTimeoutMS: 1_000,
      directConnection: true,
    });
    try {
      await client.connect();
      await client.db("admin").command({ ping: 1 });
      return;
    } catch (err) {
      lastError = err;
    } finally {
      await client.close().catch(() => {});
    }
    await Bun.sleep(50);
  }
  throw new Error(`no ping answer within deadline: ${String(lastError)}`);
}

function tail(path: string, lines: number): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

const DEFAULT_CLIENT_OPTIONS: MongoClientOptions = {
  // The driver default (30 s) is longer than a test's budget; fail fast and say so instead.
  serverSelectionTimeoutMS: 10_000,
};

export async function startMongo(): Promise<MongoHandle> {
  const external = process.env.MONGO_URI;
  if (external) return externalHandle(external);
  return spawnFerretdb();
}

async function externalHandle(uri: string): Promise<MongoHandle> {
  const url = new URL(uri);
  const dbName = randomDbName();
  const clients: MongoClient[] = [];
  const refuse = async (): Promise<never> => {
    throw new Error(
      "cannot stop an external server: MONGO_URI is set, so this handle does not own the process; " +
        "outage tests need the spawned FerretDB (unset MONGO_URI)",
    );
  };
  try {
    await waitForPing(uri, Date.now() + READY_DEADLINE_MS);
  } catch (err) {
    throw new Error(`MONGO_URI=${uri} is not answering: ${(err as Error).message}`);
  }
  return {
    uri,
    host: url.hostname,
    port: url.port ? Number(url.port) : 27017,
    dbName,
    external: true,
    logPath: null,
    async client(options) {
      const c = new MongoClient(uri, { ...DEFAULT_CLIENT_OPTIONS, ...options });
      clients.push(c);
      await c.connect();
      return c;
    },
    stop: refuse,
    start: refuse,
    kill: refuse,
    async destroy() {
      const admin = new MongoClient(uri, DEFAULT_CLIENT_OPTIONS);
      try {
        await admin.db(dbName).dropDatabase();
      } finally {
        await admin.close();
        await Promise.all(clients.map((c) => c.close().catch(() => {})));
      }
    },
    logTail: () => "(external server: no log)",
  };
}

async function spawnFerretdb(): Promise<MongoHandle> {
  const bin = resolveFerretdbBinary();
  installExitHook();
  const dir = await mkdtemp(join(tmpdir(), "ferretdb-"));
  const dataDir = join(dir, "data");
  await mkdir(dataDir);
  const logPath = join(dir, "ferretdb.log");
  const host = "127.0.0.1";
  let port = freePort();
  const dbName = randomDbName();
  const clients: MongoClient[] = [];
  let proc: Subprocess | null = null;

  const args = () => [
    bin,
    "--handler=sqlite",
    `--sqlite-url=file:${dataDir}/`,
    `--listen-addr=${host}:${port}`,
    // Default state dir is the cwd and the default debug listener is a fixed port: both would collide
    // between parallel instances.
    `--state-dir=${dir}`,
    "--debug-addr=-",
    "--telemetry=disable",
    "--log-level=INFO",
  ];

  const launch = async (): Promise<void> => {
    // Append so a restart's log follows the previous run's, which is what one wants when debugging an outage.
    const fd = openSync(logPath, "a");
    let child: Subprocess;
    try {
      child = Bun.spawn(args(), { stdin: "ignore", stdout: fd, stderr: fd, cwd: dir });
    } catch (err) {
      throw new Error(`could not spawn ${bin}: ${(err as Error).message}. ${INSTALL_HINT}`);
    } finally {
      closeSync(fd);
    }
    proc = child;
    live.add(child);
    child.exited.then(() => live.delete(child));
    try {
      await waitForPing(`mongodb://${host}:${port}/`, Date.now() + READY_DEADLINE_MS, child.exited);
    } catch (err) {
      await terminate("SIGKILL");
      const log = tail(logPath, 30);
      const versionHint = log.includes("Invalid build/version/version.txt")
        ? "\nThis is the binary from a plain `go install`; rebuild it with `bash scripts/install-ferretdb.sh`."
        : "";
      throw new Error(
        `FerretDB did not become ready on ${host}:${port}: ${(err as Error).message}\n` +
          `command: ${args().join(" ")}\n` +
          `log tail (the temp dir is removed):\n${log || "(empty)"}${versionHint}\n${INSTALL_HINT}`,
      );
    }
  };

  const terminate = async (signal: "SIGTERM" | "SIGKILL"): Promise<void> => {
    const child = proc;
    if (!child) return;
    proc = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    if (signal === "SIGTERM") {
      const timedOut = await Promise.race([
        child.exited.then(() => false),
        Bun.sleep(STOP_GRACE_MS).then(() => true),
      ]);
      if (timedOut) child.kill("SIGKILL");
    }
    await child.exited;
  };

  try {
    await launch();
  } catch (err) {
    // A port grabbed by someone else between freePort() and bind is the one transient cause; try once more.
    if (!tail(logPath, 30).includes("address already in use")) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    port = freePort();
    try {
      await launch();
    } catch (err2) {
      await rm(dir, { recursive: true, force: true });
      throw err2;
    }
  }

  const uri = `mongodb://${host}:${port}/`;
  return {
    uri,
    host,
    port,
    dbName,
    external: false,
    logPath,
    async client(options) {
      const c = new MongoClient(uri, { ...DEFAULT_CLIENT_OPTIONS, ...options });
      clients.push(c);
      await c.connect();
      return c;
    },
    stop: () => terminate("SIGTERM"),
    async start() {
      if (proc) throw new Error("FerretDB is already running; call stop() or kill() first");
      // Same port and data dir on purpose: clients must see the *same* server come back.
      await launch();
    },
    kill: () => terminate("SIGKILL"),
    async destroy() {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await terminate("SIGTERM");
      await rm(dir, { recursive: true, force: true });
    },
    logTail: (lines = 30) => tail(logPath, lines),
  };
}

export interface MongoForFile {
  /** The file's server, from `beforeAll` on. */
  readonly mongo: MongoHandle;
  /** A connected client of it, for reading back what the service wrote. */
  readonly client: MongoClient;
  /** Runs `fn` in `afterAll`, newest first, before the server is destroyed (services, proxies, temp dirs). */
  defer(fn: () => Promise<void> | void): void;
}

/**
 * One FerretDB for a whole test file: started in `beforeAll`, destroyed in `afterAll` once every
 * deferred clean-up has run. Call it at the top level of the file.
 */
export function mongoForFile(
  clientOptions: MongoClientOptions = { serverSelectionTimeoutMS: 5_000 },
): MongoForFile {
  let mongo: MongoHandle | undefined;
  let client: MongoClient | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  const notYet = (what: string): never => {
    throw new Error(
      `mongoForFile(): ${what} is only there from beforeAll on (call mongoForFile() at the top level)`,
    );
  };
  beforeAll(async () => {
    mongo = await startMongo();
    client = await mongo.client(clientOptions);
  });
  afterAll(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
    await mongo?.destroy();
  });
  return {
    get mongo() {
      return mongo ?? notYet("mongo");
    },
    get client() {
      return client ?? notYet("client");
    },
    defer(fn) {
      cleanups.push(fn);
    },
  };
}
