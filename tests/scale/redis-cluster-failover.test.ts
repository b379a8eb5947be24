import { afterAll, beforeAll, expect, test } from "bun:test";
import { busState, isMessage, presenceVia, socketPool } from "../helpers/redis.ts";
import { type ClusterNode, startCluster, type TestCluster } from "../helpers/redis-cluster.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { Frame } from "../helpers/ws-client.ts";

/**
 * Three masters and one replica (of master 0). Master 0 is killed for good: the cluster
 * promotes the replica, and both instances must carry on through the new master, replay what
 * fell into the gap and rewrite the presence the dead master held. Instance A was given the
 * dead master's address, so it must redial through the other nodes it learnt.
 */

let cluster: TestCluster;
let a: TestService;
let b: TestService;
const pool = socketPool();
const connect = pool.connect;

const env = (id: string, node: ClusterNode) => ({
  REDIS_URL: node.url,
  REDIS_PREFIX: "fo:",
  INSTANCE_ID: id,
  PRESENCE_TTL_S: "3",
});

async function role(node: ClusterNode): Promise<string> {
  const info = String(await cluster.command(node, "INFO", ["replication"]));
  return /role:(\w+)/.exec(info)?.[1] ?? "unknown";
}

beforeAll(async () => {
  cluster = await startCluster({ masters: 3, replicas: 1 });
  const replica = cluster.nodes[3]!;
  await waitUntil(
    async () => {
      const info = String(await cluster.command(replica, "INFO", ["replication"]));
      return info.includes("master_link_status:up");
    },
    { message: "the replica is in sync" },
  );
  a = await startTestService({ env: env("A", cluster.nodes[0]!) });
  b = await startTestService({ env: env("B", cluster.nodes[1]!) });
});

afterAll(async () => {
  pool.closeAll();
  await a?.stop();
  await b?.stop();
  await cluster?.stop();
});

test("a master dies and its replica is promoted: the chat goes on, nothing acked is lost", async () => {
  const [master0, , , replica] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
  expect(await role(replica)).toBe("slave");
  const student = await connect(b, 15, { lesson_id: 5 });
  const mentor = await connect(a, 10, { lesson_id: 5, student_id: 15 });

  mentor.send({ type: "message", text: "before", client_id: "f-0" });
  const before = await mentor.next("ack");
  await student.next(isMessage(before.id), 5000);

  await master0.kill();
  const during: Frame[] = [];
  for (let i = 0; i < 3; i++) {
    mentor.send({ type: "message", text: `during ${i}`, client_id: `f-d${i}` });
    during.push(await mentor.next("ack", 5000));
  }
  await waitUntil(async () => (await role(replica)) === "master", {
    message: "the replica is promoted",
    timeoutMs: 20_000,
  });
  await cluster.waitOk();
  await waitUntil(async () => (await busState(a)).ok && (await busState(b)).ok, {
    message: "both instances are back on the bus",
    timeoutMs: 20_000,
  });

  // Whatever fell into the gap arrives as a replay, once.
  for (const ack of during) await student.next(isMessage(ack.id), 15_000);
  await Bun.sleep(2500);
  for (const ack of during) expect(student.frames.filter(isMessage(ack.id))).toHaveLength(1);

  mentor.send({ type: "message", text: "after", client_id: "f-a" });
  const after = await mentor.next("ack");
  await student.next(isMessage(after.id), 5000);
  student.send({ type: "message", text: "back", client_id: "f-s" });
  const back = await student.next("ack");
  await mentor.next(isMessage(back.id), 5000);

  for (const [svc, asUser, ofUser] of [
    [a, 10, 15],
    [b, 15, 10],
  ] as const) {
    await waitUntil(async () => (await presenceVia(svc, asUser, ofUser)).online, {
      message: `user ${ofUser} is online as seen from ${asUser}`,
    });
  }
  student.close();
  mentor.close();
});
