import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { RedisClient } from "bun";
import { freePort } from "./net.ts";
import { requireRedis } from "./redis.ts";
import { tempDir } from "./service.ts";
import { waitUntil } from "./wait.ts";

/**
 * A private Redis Cluster for tests: `masters` nodes with slots, `replicas` more nodes that
 * replicate the first masters, each a `redis-server --cluster-enabled yes` on a free port with
 * its cluster bus on another (`--cluster-port`, Redis 7.0+, as sharded pub/sub needs anyway),
 * in a temp dir, without persistence. A node can
 * be killed (SIGKILL) and started again from its nodes.conf; it comes back empty, as a
 * crashed cache would. Every node process is registered so the preload kills leftovers.
 */

const nodeProcs = new Set<Bun.Subprocess>();

export function killClusterNodes(): void {
  for (const p of nodeProcs) p.kill(9);
  nodeProcs.clear();
}

/** A free port not yet given to another node of this cluster (a node keeps its ports on restart). */
function nodePort(taken: Set<number>): number {
  for (let i = 0; i < 20; i++) {
    const port = freePort();
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error("freePort kept answering ports this cluster already holds");
}

export interface ClusterNode {
  port: number;
  /** The cluster bus port (gossip, failover votes). */
  busPort: number;
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
    const port = nodePort(taken);
    const busPort = nodePort(taken);
    const nodeDir = join(dir.path, String(port));
    mkdirSync(nodeDir);
    let proc: Bun.Subprocess | undefined;
    const url = `redis://127.0.0.1:${port}`;
    const node: ClusterNode = {
      port,
      busPort,
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
            "--cluster-port",
            String(busPort),
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
        await waitUntil(
          async () => {
            if (p.exitCode !== null) throw new Error(`redis-server exited with ${p.exitCode}`);
            await requireRedis(url);
            return true;
          },
          { message: `the cluster node on port ${port} to answer`, timeoutMs: 10_000 },
        );
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
      await waitUntil(
        async () => {
          for (const n of joined) {
            if (!n.running) continue;
            const info = String(await command(n, "CLUSTER", ["INFO"]));
            if (!info.includes("cluster_state:ok")) return false;
          }
          return true;
        },
        {
          message: "every running node of the test cluster to report cluster_state:ok",
          timeoutMs: ms,
          intervalMs: 100,
        },
      );
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
      await command(replica, "CLUSTER", ["MEET", "127.0.0.1", String(master.port), String(master.busPort)]);
      // The replica must have heard of the master through the bus first.
      await waitUntil(() => command(replica, "CLUSTER", ["REPLICATE", masterId]), {
        message: `node ${replica.port} to replicate node ${master.port}`,
        timeoutMs: 10_000,
        intervalMs: 100,
      });
      joined.push(replica);
    }
  }
  await cluster.waitOk();
  return cluster;
}
