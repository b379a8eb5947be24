import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { conversationIdFor } from "../../src/ids.ts";
import { download, downloadedBytes, upload, uploaded } from "../helpers/attachments.ts";
import { bigPng, HTML_PAGE, makePdf, makePng, makeZip, randomBinary, sha256Hex } from "../helpers/files.ts";
import { type InProcessService, startTestService } from "../helpers/service.ts";
import { waitUntil } from "../helpers/wait.ts";

/**
 * Attachments on one instance without MongoDB: the upload and download contract, who may do
 * what, limits, and the message frame, REST rows and resume carrying attachments.
 * Cast: lesson 5, mentor 10, students 15 and 16; mentor 11 teaches lesson 6.
 */

const CONV = conversationIdFor(5, 10, 15);
const CONV_16 = conversationIdFor(5, 10, 16);
let svc: InProcessService;

beforeAll(async () => {
  svc = await startTestService({
    env: { ATTACHMENT_MAX_MB: "1", ATTACHMENT_UNSENT_TTL_S: "2", RATE_REST_PER_MIN: "100000" },
  });
  // The conversations exist once someone connected.
  for (const [user, q] of [
    [10, { lesson_id: 5, student_id: 15 }],
    [16, { lesson_id: 5 }],
  ] as const) {
    const s = await svc.connect(user, q);
    await s.next("ready");
    s.close();
  }
});

afterAll(async () => {
  await svc?.stop();
});

describe("upload and download", () => {
  test("both participants upload (raw and multipart) and both download byte-identical copies", async () => {
    const png = makePng(40, 30, 1);
    const pdf = makePdf("homework");
    const a = await uploaded(svc.url, 10, CONV, png, { name: "Bildschirmfoto 2024.png", type: "image/jpeg" });
    const b = await uploaded(svc.url, 15, CONV, pdf, { name: "Übung 1.pdf", multipart: true });
    expect(a).toEqual({
      id: a.id,
      name: "Bildschirmfoto 2024.png",
      size: png.length,
      mime: "image/png",
      sha256: sha256Hex(png),
    });
    expect(b).toMatchObject({
      name: "Übung 1.pdf",
      size: pdf.length,
      mime: "application/pdf",
      sha256: sha256Hex(pdf),
    });
    for (const user of [10, 15]) {
      expect(await downloadedBytes(svc.url, user, a.id)).toEqual(png);
      expect(await downloadedBytes(svc.url, user, b.id)).toEqual(pdf);
    }
  });

  test("headers: sniffed type, nosniff, inline only for raster images, CSP, ETag, ranges", async () => {
    const png = makePng(8, 8, 2);
    const zip = makeZip();
    const text = new TextEncoder().encode("const x = 1;\nexport default x;\n");
    const img = await uploaded(svc.url, 10, CONV, png, { name: "a.png" });
    const arc = await uploaded(svc.url, 10, CONV, zip, { name: "code.zip" });
    const src = await uploaded(svc.url, 15, CONV, text, { name: 'evil"\r\nSet-Cookie: x=1.ts' });
    expect(src.name).toBe("evil_Set-Cookie_ x=1.ts");
    const r1 = await download(svc.url, 15, img.id);
    expect(r1.headers.get("content-type")).toBe("image/png");
    expect(r1.headers.get("x-content-type-options")).toBe("nosniff");
    expect(r1.headers.get("content-disposition")).toStartWith("inline;");
    expect(r1.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(r1.headers.get("etag")).toBe(`"${img.sha256}"`);
    const r2 = await download(svc.url, 15, arc.id);
    expect(r2.headers.get("content-type")).toBe("application/zip");
    expect(r2.headers.get("content-disposition")).toStartWith("attachment;");
    const r3 = await download(svc.url, 10, src.id);
    expect(r3.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(r3.headers.get("content-disposition")).toStartWith("attachment;");
    expect(r3.headers.get("set-cookie")).toBeNull();
    const part = await download(svc.url, 10, img.id, { range: "bytes=8-15" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 8-15/${png.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(png.slice(8, 16));
    expect((await download(svc.url, 10, img.id, { "if-none-match": `"${img.sha256}"` })).status).toBe(304);
    expect((await download(svc.url, 10, img.id, { range: `bytes=${png.length}-` })).status).toBe(416);
  });

  test("a stranger, a student of the same lesson and an unauthenticated caller are refused", async () => {
    const png = makePng(4, 4, 3);
    const mine = await uploaded(svc.url, 15, CONV, png, { name: "mine.png" });
    for (const user of [11, 16]) {
      expect((await upload(svc.url, user, CONV, png, { name: "x.png" })).status).toBe(404);
      const res = await download(svc.url, user, mine.id);
      expect(res.status).toBe(404);
      expect((await res.json()).error.code).toBe("not_found");
    }
    expect((await upload(svc.url, undefined, CONV, png)).status).toBe(401);
    expect((await download(svc.url, undefined, mine.id)).status).toBe(401);
    // An id that exists looks exactly like one that does not.
    const other = await download(svc.url, 16, "65f0000000000000000000ff");
    expect(other.status).toBe(404);
    expect((await upload(svc.url, 15, "not-an-id", png)).status).toBe(400);
    expect((await download(svc.url, 15, "not-an-id")).status).toBe(400);
  });

  test("size and type limits with real files", async () => {
    const limit = 1024 * 1024;
    expect((await upload(svc.url, 10, CONV, bigPng(limit, 3), { name: "max.png" })).status).toBe(201);
    const big = await upload(svc.url, 10, CONV, bigPng(limit + 1, 4), { name: "big.png" });
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe("too_large");
    const multipartBig = await upload(svc.url, 10, CONV, bigPng(limit + 1, 5), {
      name: "big.png",
      multipart: true,
    });
    expect(multipartBig.status).toBe(413);
    const html = await upload(svc.url, 10, CONV, HTML_PAGE, { name: "cute-cat.png", type: "image/png" });
    expect(html.status).toBe(415);
    expect((await html.json()).error.message).toContain("text/html");
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>');
    const svgRes = await upload(svc.url, 10, CONV, svg, { name: "x.svg", multipart: true });
    expect(svgRes.status).toBe(415);
    expect((await svgRes.json()).error.message).toContain("image/svg+xml");
    const exe = await upload(svc.url, 10, CONV, randomBinary(2000), { name: "setup.pdf" });
    expect(exe.status).toBe(415);
    expect((await exe.json()).error.message).toContain("application/octet-stream");
  });
});

describe("attachments in messages", () => {
  test("the frame, REST rows and resume carry the attachments", async () => {
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const student = await svc.connect(15, { lesson_id: 5 });
    await mentor.next("ready");
    await student.next("ready");
    const png = makePng(10, 10, 7);
    const pdf = makePdf("sheet");
    const a = await uploaded(svc.url, 10, CONV, png, { name: "shot.png" });
    const b = await uploaded(svc.url, 10, CONV, pdf, { name: "sheet.pdf" });
    mentor.send({ type: "message", client_id: "att-1", attachments: [a.id, b.id] });
    const ack = await mentor.next("ack");
    const refs = [
      { id: a.id, name: "shot.png", size: png.length, mime: "image/png" },
      { id: b.id, name: "sheet.pdf", size: pdf.length, mime: "application/pdf" },
    ];
    const live = await student.next((f) => f.type === "message" && f.id === ack.id);
    expect(live.attachments).toEqual(refs);
    expect(live.text).toBe("");
    const rows = (await (await svc.get(`/messages?conversation_id=${CONV}`, 15)).json()) as Array<{
      id: string;
      attachments?: unknown;
    }>;
    expect(rows.find((m) => m.id === ack.id)?.attachments).toEqual(refs);
    const older = (await (
      await svc.get(`/messages?conversation_id=${CONV}&after=000000000000000000000000&limit=200`, 10)
    ).json()) as Array<{
      id: string;
      attachments?: unknown;
    }>;
    expect(older.find((m) => m.id === ack.id)?.attachments).toEqual(refs);
    const conv = (await (await svc.get(`/conversations/${CONV}`, 15)).json()) as {
      last_message: { attachments?: unknown };
    };
    expect(conv.last_message.attachments).toEqual(refs);
    const resumed = await svc.connect(15, { lesson_id: 5, since: "000000000000000000000000" });
    const replay = await resumed.next((f) => f.type === "message" && f.id === ack.id);
    expect(replay.attachments).toEqual(refs);
    // A retry with the same client_id is the same message, not a second binding.
    mentor.send({ type: "message", client_id: "att-1", attachments: [a.id, b.id] });
    expect((await mentor.next("ack")).duplicate).toBe(true);
    for (const s of [mentor, student, resumed]) s.close();
  });

  test("what a message may attach", async () => {
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    const student = await svc.connect(15, { lesson_id: 5 });
    await mentor.next("ready");
    await student.next("ready");
    const theirs = await uploaded(svc.url, 15, CONV, makePng(2, 2, 1), { name: "s.png" });
    const elsewhere = await uploaded(svc.url, 10, CONV_16, makePng(2, 2, 2), { name: "o.png" });
    const ok = await uploaded(svc.url, 10, CONV, makePng(2, 2, 3), { name: "m.png" });
    const refusal = async (frame: object) => {
      mentor.send({ type: "message", ...frame });
      return mentor.next("error");
    };
    expect((await refusal({ attachments: [theirs.id] })).code).toBe("not_found");
    expect((await refusal({ attachments: [elsewhere.id] })).code).toBe("not_found");
    expect((await refusal({ attachments: [] })).code).toBe("empty");
    expect((await refusal({})).code).toBe("empty");
    expect((await refusal({ attachments: Array(11).fill(ok.id) })).code).toBe("bad_frame");
    expect((await refusal({ attachments: ["nope"] })).code).toBe("bad_frame");
    // Refused messages bound nothing: the upload can still be sent, once.
    mentor.send({ type: "message", text: "here", attachments: [ok.id] });
    await mentor.next("ack");
    expect((await refusal({ text: "again", attachments: [ok.id] })).code).toBe("conflict");
    mentor.close();
    student.close();
  });

  test("uploads never sent are removed after the TTL; sent ones stay", async () => {
    const mentor = await svc.connect(10, { lesson_id: 5, student_id: 15 });
    await mentor.next("ready");
    const kept = await uploaded(svc.url, 10, CONV, makePng(3, 3, 40), { name: "kept.png" });
    const dropped = await uploaded(svc.url, 10, CONV, makePng(3, 3, 41), { name: "dropped.png" });
    mentor.send({ type: "message", text: "with", attachments: [kept.id] });
    await mentor.next("ack");
    await waitUntil(async () => (await download(svc.url, 10, dropped.id)).status === 404, {
      message: "the sweep to remove the unsent upload",
      timeoutMs: 10_000,
    });
    expect((await download(svc.url, 10, kept.id)).status).toBe(200);
    mentor.close();
  });
});
