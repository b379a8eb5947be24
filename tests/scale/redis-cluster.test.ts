import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { busState, isMessage, presenceOf, presenceVia, socketPool } from "../helpers/redis.ts";
import { startCluster, type TestCluster } from "../helpers/redis-cluster.ts";
import { startTestService, type TestService, tempDir } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";
import type { Frame } from "../helpers/ws-client.ts";

/**
 * Two instances on a three-master Redis Cluster started by this file, A given node 0's address
 * and B node 1's: the same chat as on one Redis (tests/redis-fanout.test.ts), presence across
 * instances, conversation channels on sharded pub/sub spread over the nodes, and a master
 * killed and restarted mid-chat.
 */

const MENTOR = 10;
const STUDENTS = Array.from({ length: 24 }, (_, i) => 100 + i);
const prefix = "cl:";
const dir = tempDir("cluster-dir-");
const directoryFile = join(dir.path, "cluster-directory.json");
writeFileSync(
  directoryFile,
  JSON.stringify({
    users: [{ id: MENTOR, is_mentor: true }, ...STUDENTS.map((id) => ({ id, is_mentor: false }))],
    lessons: [{ id: 5, course_id: 1, teacher_id: MENTOR, student_ids: STUDENTS }],
  }),
);

let cluster: TestCluster;
let a: TestService;
let b: TestService;
const pool = socketPool();
const connect = pool.connect;

const env = (id: string, node: number) => ({
  REDIS_URL: cluster.nodes[node]!.url,
  REDIS_PREFIX: prefix,
  INSTANCE_ID: id,
  PRESENCE_TTL_S: "3",
  DIRECTORY_FILE: directoryFile,
  RATE_MESSAGES_BURST: "500",
  RATE_USER_MESSAGES_PER_S: "500",
  MAX_CONNECTIONS_PER_USER: "100",
});

beforeAll(async () => {
  cluster = await startCluster({ masters: 3 });
  a = await startTestService({ env: env("A", 0) });
  b = await startTestService({ env: env("B", 1) });
});

afterAll(async () => {
  pool.closeAll();
  await a?.stop();
  await b?.stop();
  await cluster?.stop();
  dir.remove();
});

describe("two instances on a Redis Cluster", () => {
  test("readiness names the cluster and sharded pub/sub", async () => {
    expect(await busState(a)).toMatchObject({
      ok: true,
      state: "up",
      redis: { mode: "cluster", pubsub: "sharded" },
    });
    expect(await busState(b)).toMatchObject({ ok: true, redis: { mode: "cluster" } });
  });

  test("mentor on A and student on B chat, type, mark viewed and see each other", async () => {
    const student = await connect(b, 100, { lesson_id: 5 });
    const mentor = await connect(a, MENTOR, { lesson_id: 5, student_id: 100 });
    // The snapshot of the student on B comes from presence keys on whichever node owns them.
    await mentor.next(presenceOf(100, true), 5000);
    await student.next(presenceOf(MENTOR, true), 5000);

    mentor.send({ type: "message", text: "hello from A", client_id: "m-1" });
    const ack = await mentor.next("ack");
    const got = await student.next(isMessage(String(ack.id)), 5000);
    expect(got).toMatchObject({ sender_id: MENTOR, text: "hello from A", client_id: "m-1" });

    student.send({ type: "message", text: "hi from B", client_id: "s-1" });
    const sAck = await student.next("ack");
    await mentor.next(isMessage(String(sAck.id)), 5000);

    student.send({ type: "typing", is_typing: true });
    expect(await mentor.next("typing", 5000)).toMatchObject({ sender_id: 100, is_typing: true });
    student.send({ type: "viewed", message_id: ack.id });
    expect(await mentor.next("viewed", 5000)).toMatchObject({ message_id: ack.id, viewer_id: 100 });

    await Bun.sleep(300);
    expect(student.frames.filter(isMessage(String(ack.id)))).toHaveLength(1);
    expect(mentor.frames.filter(isMessage(String(sAck.id)))).toHaveLength(1);
    expect(mentor.all("typing")).toHaveLength(1);

    // The reported bug: A must see the student connected to B as online, and B the mentor.
    expect((await presenceVia(a, MENTOR, 100)).online).toBe(true);
    expect((await presenceVia(b, 100, MENTOR)).online).toBe(true);

    mentor.close();
    await student.next(presenceOf(MENTOR, false), 5000);
    const after = await presenceVia(b, 100, MENTOR);
    expect(after.online).toBe(false);
    expect(typeof after.last_seen).toBe("string");
    student.close();
    await waitUntil(async () => !(await presenceVia(a, MENTOR, 100)).online, {
      message: "A sees the student offline",
    });
  });

  test("frames from one instance keep their order on the other", async () => {
    const student = await connect(b, 101, { lesson_id: 5 });
    const mentor = await connect(a, MENTOR, { lesson_id: 5, student_id: 101 });
    const n = 60;
    for (let i = 0; i < n; i++) mentor.send({ type: "message", text: `n${i}`, client_id: `o-${i}` });
    const texts: string[] = [];
    while (texts.length < n) {
      const f = await student.next((x) => x.type === "message" && x.sender_id === MENTOR, 10_000);
      texts.push(String(f.text));
    }
    expect(texts).toEqual(Array.from({ length: n }, (_, i) => `n${i}`));
    mentor.close();
    student.close();
  });

  test("a user online on both instances stays online until the last device leaves", async () => {
    const mentor = await connect(a, MENTOR, { lesson_id: 5, student_id: 102 });
    const onA = await connect(a, 102, { lesson_id: 5 });
    const onB = await connect(b, 102, { lesson_id: 5 });
    await mentor.next(presenceOf(102, true), 5000);
    const seen = mentor.frames.length;
    onB.close();
    await Bun.sleep(500);
    expect(mentor.frames.slice(seen).filter(presenceOf(102, false))).toHaveLength(0);
    expect((await presenceVia(b, MENTOR, 102)).online).toBe(true);
    onA.close();
    await mentor.next(presenceOf(102, false), 5000);
    expect((await presenceVia(b, MENTOR, 102)).online).toBe(false);
    mentor.close();
  });

  test("conversation channels are sharded, each on the node that owns its slot, spread over all three", async () => {
    const conversations: string[] = [];
    const socks = [];
    for (const s of STUDENTS.slice(4)) {
      const student = await connect(b, s, { lesson_id: 5 });
      socks.push(student, await connect(a, MENTOR, { lesson_id: 5, student_id: s }));
      conversations.push(String(student.frames.find((f) => f.type === "ready")!.conversation_id));
    }
    const perNode: string[][] = [];
    for (const node of cluster.masters) {
      const shard = (await cluster.command(node, "PUBSUB", ["SHARDCHANNELS", `${prefix}c:*`])) as string[];
      perNode.push(shard);
      // Each channel a node serves is one whose slot it owns.
      for (const ch of shard) {
        const slot = Number(await cluster.command(node, "CLUSTER", ["KEYSLOT", ch]));
        const myId = String(await cluster.command(node, "CLUSTER", ["MYID"]));
        const shards = String(await cluster.command(node, "CLUSTER", ["NODES"]));
        const mine = shards.split("\n").find((l) => l.startsWith(myId))!;
        expect(ownsSlot(mine, slot)).toBe(true);
      }
      // Conversation frames never go over classic (cluster-wide) channels.
      const classic = (await cluster.command(node, "PUBSUB", ["CHANNELS", `${prefix}c:*`])) as string[];
      expect(classic).toEqual([]);
    }
    expect(perNode.flat().sort()).toEqual(conversations.map((c) => `${prefix}c:${c}`).sort());
    for (const shard of perNode) expect(shard.length).toBeGreaterThan(0);
    for (const s of socks) s.close();
  });

  test("a master killed and restarted mid-chat: nothing acked is lost and the bus recovers", async () => {
    const student = await connect(b, 103, { lesson_id: 5 });
    const mentor = await connect(a, MENTOR, { lesson_id: 5, student_id: 103 });
    const studentOnA = await connect(a, 103, { lesson_id: 5 });
    const conversationId = String(student.frames.find((f) => f.type === "ready")!.conversation_id);
    // The node serving this conversation's channel (its slot owner) is the one to kill.
    const victim = await ownerOf(`${prefix}c:${conversationId}`);

    mentor.send({ type: "message", text: "before", client_id: "k-0" });
    const before = await mentor.next("ack");
    await student.next(isMessage(before.id), 5000);

    await victim.kill();
    const during: Frame[] = [];
    for (let i = 0; i < 3; i++) {
      mentor.send({ type: "message", text: `during ${i}`, client_id: `k-d${i}` });
      during.push(await mentor.next("ack", 5000));
    }
    for (const ack of during) await studentOnA.next(isMessage(ack.id), 5000);
    await waitUntil(async () => (await busState(a)).state === "degraded", {
      message: "A reports the bus degraded",
    });
    expect((await a.get("/readyz")).status).toBe(200);

    await victim.start();
    await cluster.waitOk();
    await waitUntil(async () => (await busState(a)).ok && (await busState(b)).ok, {
      message: "both instances reconnect",
      timeoutMs: 20_000,
    });

    for (const ack of during) await student.next(isMessage(ack.id), 15_000);
    await Bun.sleep(2500);
    for (const ack of during) expect(student.frames.filter(isMessage(ack.id))).toHaveLength(1);

    mentor.send({ type: "message", text: "after", client_id: "k-a" });
    const after = await mentor.next("ack");
    await student.next(isMessage(after.id), 5000);
    student.send({ type: "message", text: "back", client_id: "k-s" });
    const back = await student.next("ack");
    await mentor.next(isMessage(back.id), 5000);

    // The restarted node came back empty; presence it held is rewritten.
    await waitUntil(async () => (await presenceVia(b, 103, MENTOR)).online, {
      message: "B sees the mentor online",
    });
    await waitUntil(async () => (await presenceVia(a, MENTOR, 103)).online, {
      message: "A sees the student online",
    });
    student.close();
    studentOnA.close();
    mentor.close();
  });
});

function ownsSlot(nodesLine: string, slot: number): boolean {
  // CLUSTER NODES: id addr flags master ping pong epoch state slot-ranges...
  return nodesLine
    .split(" ")
    .slice(8)
    .some((range) => {
      const [lo, hi = lo] = range.split("-").map(Number);
      return lo !== undefined && hi !== undefined && slot >= lo && slot <= hi;
    });
}

async function ownerOf(channel: string) {
  const any = cluster.masters[0]!;
  const slot = Number(await cluster.command(any, "CLUSTER", ["KEYSLOT", channel]));
  for (const node of cluster.masters) {
    const myId = String(await cluster.command(node, "CLUSTER", ["MYID"]));
    const lines = String(await cluster.command(node, "CLUSTER", ["NODES"])).split("\n");
    if (ownsSlot(lines.find((l) => l.startsWith(myId))!, slot)) return node;
  }
  throw new Error(`no master owns slot ${slot}`);
}
