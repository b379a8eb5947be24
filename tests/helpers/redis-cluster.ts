import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { RedisClient } from "bun";
import { requireRedis } from "./redis.ts";
import { tempDir } from "./service.ts";

/**
 * A private Redis Cluster for tests: `masters` nodes with slots, `replicas` more nodes that
 * replicate the first masters, each a `redis-server --cluster-enabled yes` on a free port whose
 * cluster bus port (port + 10000) is free too, in a temp dir, without persistence. A node can
 * be killed (SIGKILL) and started again from its nodes.conf; it comes back empty, as a
 * crashed cache would. Every node process is registered so the preload kills leftovers.
 */

const nodeProcs = new Set<Bun.Subprocess>();

export function killClusterNodes(): void {
  for (const p of nodeProcs) p.kill(9);
  nodeProcs.clear();
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A port in 20000–50000 with port + 10000 free as well (the cluster bus). */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if (taken.has(port) || taken.has(port + 10000) || taken.has(port - 10000)) continue;
    if ((await portFree(port)) && (await portFree(port + 10000))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error("no free port pair (p, p+10000) for a cluster node");
}

export interface ClusterNode {
  port: number;
  url: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  readonly running: boolean;
}

export interface TestCluster {
  nodes: ClusterNode[];
  /** The nodes that own slots at creation. */
  masters: ClusterNode[];
  /** One `redis-cli` style command on one node. */
  command(node: ClusterNode, name: string, args: string[]): Promise<unknown>;
  /** Waits until every running node reports cluster_state:ok. */
  waitOk(ms?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(opts: { masters?: number; replicas?: number } = {}): Promise<TestCluster> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 0;
  const dir = tempDir("redis-cluster-");
  const taken = new Set<number>();
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < masters + replicas; i++) {
    const port = await clusterPort(taken);
    const nodeDir = join(dir.path, String(port));
    mkdirSync(nodeDir);
    let proc: Bun.Subprocess | undefined;
    const url = `redis://127.0.0.1:${port}`;
    const node: ClusterNode = {
      port,
      url,
      get running() {
        return proc !== undefined && proc.exitCode === null;
      },
      async start() {
        proc = Bun.spawn(
          [
            "redis-server",
            "--port",
            String(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            // Short, so a replica is promoted within the test's patience.
            "--cluster-node-timeout",
            "1500",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            nodeDir,
          ],
          { stdout: "ignore", stderr: "pipe" },
        );
        nodeProcs.add(proc);
        const p = proc;
        void p.exited.then(() => nodeProcs.delete(p));
        const deadline = Date.now() + 10_000;
        for (;;) {
          try {
            await requireRedis(url);
            return;
          } catch (err) {
            if (Date.now() > deadline || p.exitCode !== null) {
              throw new Error(`cluster node on port ${port} did not start: ${String(err)}`);
            }
            await Bun.sleep(50);
          }
        }
      },
      async kill() {
        proc?.kill(9);
        await proc?.exited;
        proc = undefined;
      },
    };
    await node.start();
    nodes.push(node);
  }

  const even = replicas % masters === 0;
  const create = Bun.spawn(
    [
      "redis-cli",
      "--cluster",
      "create",
      // redis-cli spreads replicas evenly; an uneven shape is arranged by hand below.
      ...(even ? nodes : nodes.slice(0, masters)).map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      even ? String(replicas / masters) : "0",
      "--cluster-yes",
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  if ((await create.exited) !== 0) {
    const out = `${await new Response(create.stdout).text()}${await new Response(create.stderr).text()}`;
    throw new Error(`redis-cli --cluster create failed:\n${out}`);
  }

  /** Nodes that are part of the cluster (a node not yet met reports cluster_state:fail). */
  const joined = even ? [...nodes] : nodes.slice(0, masters);
  const command = async (node: ClusterNode, name: string, args: string[]) => {
    const c = new RedisClient(node.url, { autoReconnect: false, connectionTimeout: 2000 });
    try {
      await c.connect();
      return await c.send(name, args);
    } finally {
      c.close();
    }
  };

  const cluster: TestCluster = {
    nodes,
    masters: nodes.slice(0, masters),
    command,
    async waitOk(ms = 20_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        let ok = true;
        for (const n of joined) {
          if (!n.running) continue;
          try {
            const info = String(await command(n, "CLUSTER", ["INFO"]));
            if (!info.includes("cluster_state:ok")) ok = false;
          } catch {
            ok = false;
          }
        }
        if (ok) return;
        if (Date.now() > deadline) throw new Error("the test cluster did not reach cluster_state:ok");
        await Bun.sleep(100);
      }
    },
    async stop() {
      for (const n of nodes) await n.kill();
      dir.remove();
    },
  };

  // Leftover replicas (uneven shape): attach each to a master in turn.
  if (!even) {
    await cluster.waitOk();
    for (let r = 0; r < replicas; r++) {
      const replica = nodes[masters + r]!;
      const master = nodes[r % masters]!;
      const masterId = String(await command(master, "CLUSTER", ["MYID"]));
      await command(replica, "CLUSTER", ["MEET", "127.0.0.1", String(master.port)]);
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await command(replica, "CLUSTER", ["REPLICATE", masterId]);
          joined.push(replica);
          break;
        } catch (err) {
          // The replica must have heard of the master through the bus first.
          if (Date.now() > deadline) throw err;
          await Bun.sleep(100);
        }
      }
    }
  }
  await cluster.waitOk();
  return cluster;
}
