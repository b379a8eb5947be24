/**
 * Network faults for tests through Toxiproxy (github.com/Shopify/toxiproxy v2.5.0, built by
 * scripts/install-toxiproxy.sh): one toxiproxy-server per test file on a free port, a proxy per
 * upstream, and the fault shapes the tests use as toxics. tests/infra/toxiproxy.test.ts pins
 * what each shape looks like to a MongoDB client.
 *
 * A server that cannot be started makes the caller throw with the reason; tests never skip.
 */

import { afterAll, beforeAll } from "bun:test";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "./net.ts";
import { waitUntil } from "./wait.ts";

export const TOXIPROXY_INSTALL_HINT =
  "Install it with `bash scripts/install-toxiproxy.sh` (part of scripts/setup.sh; builds " +
  "github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0 into $(go env GOPATH)/bin/toxiproxy-server), " +
  "or set TOXIPROXY_BIN to a toxiproxy-server binary.";

/** Direction of a toxic: upstream is client → server, downstream is server → client. */
export type Stream = "upstream" | "downstream";

/** The toxics this helper uses, with Toxiproxy's attribute names and units. */
export type ToxicSpec =
  /** Drops every byte; with timeout 0 the connection stays open forever (a blackhole), else it closes after `timeout` ms. */
  | { type: "timeout"; attributes: { timeout: number } }
  /** Closes the connection on the next bytes (after `timeout` ms) with linger 0: an RST to both ends. */
  | { type: "reset_peer"; attributes: { timeout: number } }
  /** Holds every chunk `latency` ± `jitter` ms. */
  | { type: "latency"; attributes: { latency: number; jitter?: number } }
  /** Caps throughput at `rate` KB/s. */
  | { type: "bandwidth"; attributes: { rate: number } };

export interface Toxic {
  name: string;
  type: ToxicSpec["type"];
  stream: Stream;
  toxicity: number;
  attributes: Record<string, number>;
}

export interface ProxyInfo {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  toxics: Toxic[];
}

export interface ToxiproxyServer {
  /** The HTTP API, http://127.0.0.1:port */
  readonly apiUrl: string;
  /** A proxy listening on a free loopback port (chosen by the kernel) in front of `upstream`. */
  createProxy(name: string, upstream: { host: string; port: number }): Promise<ToxiProxy>;
  /** Every proxy with its toxics, as the server reports them. */
  proxies(): Promise<Record<string, ProxyInfo>>;
  /** SIGTERM and wait; every proxy and its connections go with it. */
  stop(): Promise<void>;
}

export interface ToxiProxy {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Convenience for MongoDB clients: mongodb://host:port/ */
  readonly uri: string;

  /** Adds one toxic (to existing connections too); the name defaults to `${type}_${stream}`. */
  addToxic(spec: ToxicSpec & { stream?: Stream; name?: string; toxicity?: number }): Promise<Toxic>;
  removeToxic(name: string): Promise<void>;
  toxics(): Promise<Toxic[]>;
  /** false closes the listener and every open connection (new ones are refused); true listens again, same port. */
  setEnabled(enabled: boolean): Promise<void>;

  // The fault shapes the tests use. Each first clears what was there, so they can be switched freely.
  /** No toxics, enabled: bytes flow both ways. */
  pass(): Promise<void>;
  /** Connections stay open but every byte in either direction is dropped; only client timeouts notice. */
  blackhole(): Promise<void>;
  /** The next bytes a client sends reset its connection; new connections are reset on their first bytes. */
  resetPeer(): Promise<void>;
  /** `ms` added in each direction, so a round trip costs at least 2 × ms. */
  latency(ms: number): Promise<void>;
  /** Throughput capped at `kbPerS` KB/s in each direction. */
  bandwidth(kbPerS: number): Promise<void>;
  /** Disabled: connection refused. */
  down(): Promise<void>;
}

export function resolveToxiproxyBinary(): string {
  const fromEnv = process.env.TOXIPROXY_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv))
      throw new Error(`TOXIPROXY_BIN=${fromEnv} does not exist. ${TOXIPROXY_INSTALL_HINT}`);
    return fromEnv;
  }
  const onPath = Bun.which("toxiproxy-server");
  if (onPath) return onPath;
  const goBin = join(homedir(), "go", "bin", "toxiproxy-server");
  if (existsSync(goBin)) return goBin;
  throw new Error(
    `toxiproxy-server not found (TOXIPROXY_BIN unset, not on PATH, not at ${goBin}). ${TOXIPROXY_INSTALL_HINT}`,
  );
}

const live = new Set<Subprocess>();
let exitHookInstalled = false;

/** A runner that dies mid-file never reaches afterAll; this keeps servers from outliving it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const proc of live) proc.kill("SIGKILL");
  });
}

async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${text.trim()}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export async function startToxiproxy(): Promise<ToxiproxyServer> {
  const bin = resolveToxiproxyBinary();
  installExitHook();
  let lastError: Error | undefined;
  // A port taken by someone else between freePort() and bind is the one transient cause; try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = freePort();
    const proc = Bun.spawn([bin, "-host", "127.0.0.1", "-port", String(port)], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    live.add(proc);
    void proc.exited.then(() => live.delete(proc));
    const apiUrl = `http://127.0.0.1:${port}`;
    const state = await waitUntil(
      async () => {
        if (proc.exitCode !== null) return "exited";
        return (await fetch(`${apiUrl}/version`)).ok && "up";
      },
      { message: `toxiproxy-server to answer on ${apiUrl}`, timeoutMs: 10_000, intervalMs: 20 },
    ).catch((err: Error) => err);
    if (state === "up") return serverHandle(apiUrl, proc);
    proc.kill("SIGKILL");
    const log = await new Response(proc.stderr).text().catch(() => "");
    lastError = new Error(
      `toxiproxy-server (${bin}) did not start on port ${port}: ${state instanceof Error ? state.message : "it exited"}\n` +
        `${log.trim().split("\n").slice(-10).join("\n")}\n${TOXIPROXY_INSTALL_HINT}`,
    );
    if (!log.includes("address already in use")) break;
  }
  throw lastError;
}

function serverHandle(apiUrl: string, proc: Subprocess): ToxiproxyServer {
  return {
    apiUrl,
    async createProxy(name, upstream) {
      const info = await api<ProxyInfo>(apiUrl, "POST", "/proxies", {
        name,
        listen: "127.0.0.1:0",
        upstream: `${upstream.host}:${upstream.port}`,
        enabled: true,
      });
      return proxyHandle(apiUrl, info);
    },
    proxies: () => api<Record<string, ProxyInfo>>(apiUrl, "GET", "/proxies"),
    async stop() {
      proc.kill("SIGTERM");
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(3_000).then(() => false)]);
      if (!exited) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

function proxyHandle(apiUrl: string, info: ProxyInfo): ToxiProxy {
  // The listen address the server bound ("127.0.0.1:0" comes back resolved); re-enabling reuses it.
  const sep = info.listen.lastIndexOf(":");
  const host = info.listen.slice(0, sep);
  const port = Number(info.listen.slice(sep + 1));
  const path = `/proxies/${encodeURIComponent(info.name)}`;

  const self: ToxiProxy = {
    name: info.name,
    host,
    port,
    uri: `mongodb://${host}:${port}/`,
    addToxic({ stream = "downstream", toxicity = 1, name, ...spec }) {
      return api<Toxic>(apiUrl, "POST", `${path}/toxics`, {
        name: name ?? `${spec.type}_${stream}`,
        stream,
        toxicity,
        ...spec,
      });
    },
    async removeToxic(name) {
      await api(apiUrl, "DELETE", `${path}/toxics/${encodeURIComponent(name)}`);
    },
    toxics: () => api<Toxic[]>(apiUrl, "GET", `${path}/toxics`),
    async setEnabled(enabled) {
      await api(apiUrl, "POST", path, { enabled });
    },

    async pass() {
      for (const t of await self.toxics()) await self.removeToxic(t.name);
      await self.setEnabled(true);
    },
    async blackhole() {
      await self.pass();
      // Both directions, so a request never reaches the server (not only its answer is lost).
      await self.addToxic({ type: "timeout", attributes: { timeout: 0 }, stream: "upstream" });
      await self.addToxic({ type: "timeout", attributes: { timeout: 0 }, stream: "downstream" });
    },
    async resetPeer() {
      await self.pass();
      await self.addToxic({ type: "reset_peer", attributes: { timeout: 0 }, stream: "upstream" });
    },
    async latency(ms) {
      await self.pass();
      await self.addToxic({ type: "latency", attributes: { latency: ms }, stream: "upstream" });
      await self.addToxic({ type: "latency", attributes: { latency: ms }, stream: "downstream" });
    },
    async bandwidth(kbPerS) {
      await self.pass();
      await self.addToxic({ type: "bandwidth", attributes: { rate: kbPerS }, stream: "upstream" });
      await self.addToxic({ type: "bandwidth", attributes: { rate: kbPerS }, stream: "downstream" });
    },
    async down() {
      await self.pass();
      await self.setEnabled(false);
    },
  };
  return self;
}

export interface ToxiproxyForFile {
  /** The file's server, from `beforeAll` on. */
  readonly server: ToxiproxyServer;
  /** A new proxy in front of `upstream`, named uniquely within the file. */
  proxy(upstream: { host: string; port: number }): Promise<ToxiProxy>;
}

/** One toxiproxy-server for a whole test file: started in `beforeAll`, stopped in `afterAll`. */
export function toxiproxyForFile(): ToxiproxyForFile {
  let server: ToxiproxyServer | undefined;
  let n = 0;
  const get = (): ToxiproxyServer => {
    if (!server) throw new Error("toxiproxyForFile(): the server is only there from beforeAll on");
    return server;
  };
  beforeAll(async () => {
    server = await startToxiproxy();
  });
  afterAll(async () => {
    await server?.stop();
  });
  return {
    get server() {
      return get();
    },
    proxy: (upstream) => get().createProxy(`p${++n}`, upstream),
  };
}
