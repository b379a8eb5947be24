import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { startTestService, type TestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

/**
 * Heartbeats: the server pings, and a peer that stops answering (a laptop lid closed, a dead
 * NAT mapping) is dropped after HEARTBEAT_IDLE_S, so presence does not keep it online forever.
 * A live client answers the pings by itself and stays.
 */

const IDLE_S = 5;
let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({ env: { HEARTBEAT_IDLE_S: String(IDLE_S) } });
});
afterAll(async () => {
  await svc.stop();
});

/** A WebSocket upgrade done by hand over TCP; the peer then never answers a ping. */
async function deadPeer(path: string): Promise<{ closed: Promise<number>; sock: net.Socket }> {
  const port = Number(new URL(svc.url).port);
  const sock = net.connect({ host: "127.0.0.1", port });
  const opened = performance.now();
  const closed = new Promise<number>((resolve) =>
    sock.on("close", () => resolve(performance.now() - opened)),
  );
  sock.on("error", () => {});
  const upgraded = new Promise<void>((resolve, reject) => {
    sock.once("data", (d: Buffer) =>
      d.toString().startsWith("HTTP/1.1 101") ? resolve() : reject(new Error(d.toString())),
    );
  });
  sock.write(
    `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  await upgraded;
  return { closed, sock };
}

describe("heartbeats", () => {
  test("a peer that stops answering is dropped, and the other side sees it go offline", async () => {
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    await mentor.next("ready");
    // The snapshot at connect: 15 has never been seen.
    expect(await mentor.next("presence")).toEqual({ type: "presence", user_id: 15, online: false });
    const dead = await deadPeer(`/ws?lesson_id=5&token=${await mintToken(15)}`);
    await mentor.next((f) => f.type === "presence" && f.user_id === 15 && f.online === true);

    const aliveFor = await dead.closed;
    // Bun closes after idleTimeout without traffic; allow for its timer granularity.
    expect(aliveFor).toBeGreaterThan((IDLE_S - 1) * 1000);
    expect(aliveFor).toBeLessThan(IDLE_S * 3 * 1000);
    const offline = await mentor.next((f) => f.type === "presence" && f.user_id === 15 && f.online === false);
    expect(Date.parse(String(offline.last_seen))).not.toBeNaN();
    // The live client answered every ping by itself and is still connected.
    expect(mentor.closed).toBeNull();
    mentor.send({ type: "ping" });
    await mentor.next("pong");
    mentor.close();
  }, 30_000);
});
