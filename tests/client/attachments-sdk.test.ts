import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { ChatClient, ChatError, type Message } from "../../src/client/index.ts";
import { bigPng, HTML_PAGE, makePdf, sha256Hex } from "../helpers/files.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

/** The SDK's attachments against the real service: upload (bytes, Blob, File), send, receive, download. */

let svc: TestService;
const clients: ChatClient[] = [];

beforeAll(async () => {
  svc = await startTestService({ env: { ATTACHMENT_MAX_MB: "2" } });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await svc.stop();
});

function client(userId: number): ChatClient {
  const c = new ChatClient({ url: svc.url, token: () => mintToken(userId), lessonId: 5, studentId: 15 });
  clients.push(c);
  return c;
}

test("upload with progress, send with attachments, the other side receives and downloads them", async () => {
  const mentor = client(10);
  const student = client(15);
  await Promise.all([mentor.connect(), student.connect()]);
  const png = bigPng(1_500_000, 8);
  const progress: number[] = [];
  const a = await mentor.upload(png, { name: "screen.png", onProgress: (sent) => progress.push(sent) });
  expect(a).toMatchObject({
    name: "screen.png",
    size: png.length,
    mime: "image/png",
    sha256: sha256Hex(png),
  });
  // Several steps, increasing, ending at the whole file.
  expect(progress.length).toBeGreaterThan(2);
  expect(progress).toEqual([...progress].sort((x, y) => x - y));
  expect(progress.at(-1)).toBe(png.length);
  const pdf = makePdf("from a File");
  const b = await mentor.upload(new File([pdf], "Übung.pdf", { type: "application/pdf" }));
  expect(b.name).toBe("Übung.pdf");
  const c = await mentor.upload(new Blob([new TextEncoder().encode("print(1)\n")]), { name: "a.py" });
  expect(c.mime).toBe("text/plain");

  const got = new Promise<Message>((resolve) => {
    student.on("message", (m) => {
      if (m.attachments?.length) resolve(m);
    });
  });
  const ack = await mentor.send("", { attachments: [a, b.id, c] });
  const m = await got;
  expect(m.id).toBe(ack.id);
  expect(m.attachments?.map((x) => x.id)).toEqual([a.id, b.id, c.id]);
  const blob = await student.download(a.id);
  expect(new Uint8Array(await blob.arrayBuffer())).toEqual(png);
});

test("refusals surface as ChatError with the server's code and status", async () => {
  const mentor = client(10);
  await mentor.connect();
  const html = mentor.upload(HTML_PAGE, { name: "x.png" });
  await expect(html).rejects.toBeInstanceOf(ChatError);
  await expect(html).rejects.toMatchObject({ code: "unsupported_type", status: 415 });
  await expect(mentor.upload(bigPng(3 * 1024 * 1024), { name: "big.png" })).rejects.toMatchObject({
    status: 413,
  });
  await expect(mentor.send("   ")).rejects.toMatchObject({ code: "empty" });
  await expect(mentor.download("65f0000000000000000000ff")).rejects.toMatchObject({ status: 404 });
});
