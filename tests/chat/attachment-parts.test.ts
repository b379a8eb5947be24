import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { MongoClient } from "mongodb";
import { SNIFF_BYTES, sniff } from "../../src/domain/sniff.ts";
import { AppError } from "../../src/errors.ts";
import { serveAttachment } from "../../src/http/attachment-response.ts";
import { prime, readUpload } from "../../src/http/upload-body.ts";
import { type BlobStore, openBlobStore } from "../../src/store/blobs.ts";
import { createGridStore, type GridStore } from "../../src/store/gridfs.ts";
import { type MongoHandle, startMongo } from "../helpers/ferretdb.ts";
import { bigPng, HTML_PAGE, makePng, randomBinary, sha256Hex } from "../helpers/files.ts";
import { tempDir } from "../helpers/service.ts";

/**
 * The attachment building blocks on their own, over real sockets: upload parsing behind a real
 * Bun.serve, the local store on a real directory, GridFS on FerretDB.
 */

const MAX = 1024 * 1024;
const dir = tempDir("attach-parts-");
let blobs: BlobStore;
let server: ReturnType<typeof Bun.serve>;

beforeAll(() => {
  blobs = openBlobStore(join(dir.path, "blobs"));
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      try {
        const upload = await prime(readUpload(req, MAX));
        const written = await blobs.write(upload.chunks, {
          maxBytes: MAX,
          headBytes: SNIFF_BYTES,
          onHead: (head) => {
            const { mime } = sniff(head);
            if (mime !== "image/png" && mime !== "text/plain")
              throw new AppError(415, "unsupported_type", mime);
          },
        });
        return Response.json({ name: upload.name ?? null, ...written, head: undefined });
      } catch (err) {
        if (err instanceof AppError) return Response.json({ code: err.code }, { status: err.status });
        throw err;
      }
    },
  });
});

afterAll(() => {
  server?.stop(true);
  dir.remove();
});

const url = () => `http://127.0.0.1:${server.port}/`;
const tmpFiles = () => readdirSync(join(dir.path, "blobs", "tmp"));

/** A body that arrives in `size`-byte pieces, with no Content-Length. */
function trickle(data: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= data.length) return c.close();
      c.enqueue(data.slice(off, off + size));
      off += size;
    },
  });
}

describe("upload bodies", () => {
  test("raw body: bytes stored under their sha256, name from X-Filename", async () => {
    const png = makePng(32, 32, 3);
    const res = await fetch(url(), {
      method: "POST",
      body: png,
      headers: { "content-type": "image/jpeg", "x-filename": encodeURIComponent("Bildschirmfoto – 1.png") },
    });
    const body = (await res.json()) as { sha256: string; size: number; name: string };
    expect(res.status).toBe(200);
    expect(body).toMatchObject({ sha256: sha256Hex(png), size: png.length, name: "Bildschirmfoto – 1.png" });
    expect(new Uint8Array(await blobs.file(body.sha256).arrayBuffer())).toEqual(png);
    expect(tmpFiles()).toEqual([]);
  });

  test("multipart from FormData, with another field before the file", async () => {
    const png = makePng(8, 8, 9);
    const form = new FormData();
    form.set("note", "x".repeat(1000));
    form.set("file", new Blob([png], { type: "image/png" }), "ü shot.png");
    const res = await fetch(url(), { method: "POST", body: form });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ sha256: sha256Hex(png), size: png.length, name: "ü shot.png" });
  });

  test("multipart streamed in 7-byte pieces: a boundary split across pieces is still found", async () => {
    const png = bigPng(50_000, 4);
    // Bytes that look like the start of the delimiter inside the file must stay file bytes.
    png.set(new TextEncoder().encode("\r\n--XyZ-boundar"), 20_000);
    const boundary = "XyZ-boundary";
    const enc = new TextEncoder();
    const body = new Uint8Array([
      ...enc.encode(
        `preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n`,
      ),
      ...enc.encode("Content-Type: image/png\r\n\r\n"),
      ...png,
      ...enc.encode(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await fetch(url(), {
      method: "POST",
      body: trickle(body, 7),
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ sha256: sha256Hex(png), size: png.length, name: "a.png" });
  });

  test("too large without Content-Length: refused mid-stream, nothing kept", async () => {
    const res = await fetch(url(), {
      method: "POST",
      body: trickle(bigPng(MAX + 1), 64 * 1024),
      headers: { "x-filename": "big.png" },
    });
    expect(res.status).toBe(413);
    expect(tmpFiles()).toEqual([]);
  });

  test("exactly the limit is accepted", async () => {
    const res = await fetch(url(), { method: "POST", body: bigPng(MAX, 2) });
    expect(res.status).toBe(200);
  });

  test("too large by Content-Length: refused before the body is read", async () => {
    const res = await fetch(url(), { method: "POST", body: bigPng(MAX + 1) });
    expect(res.status).toBe(413);
  });

  test("the type check runs on the first bytes and stops the upload", async () => {
    const res = await fetch(url(), {
      method: "POST",
      body: trickle(HTML_PAGE, 16),
      headers: { "x-filename": "x.png" },
    });
    expect(res.status).toBe(415);
    expect(tmpFiles()).toEqual([]);
  });

  test("malformed uploads are 400s", async () => {
    const noFile = new FormData();
    noFile.set("other", "1");
    expect((await fetch(url(), { method: "POST", body: noFile })).status).toBe(400);
    const cut = await fetch(url(), {
      method: "POST",
      body: `--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc`,
      headers: { "content-type": "multipart/form-data; boundary=b" },
    });
    expect(cut.status).toBe(400);
    const badName = await fetch(url(), { method: "POST", body: "hi", headers: { "x-filename": "%E0%A4%A" } });
    expect(badName.status).toBe(400);
    const noBoundary = await fetch(url(), {
      method: "POST",
      body: "x",
      headers: { "content-type": "multipart/form-data; charset=utf-8" },
    });
    expect(noBoundary.status).toBe(400);
  });

  test("the same bytes twice are one file", async () => {
    const text = new TextEncoder().encode("same notes\n");
    const a = (await (await fetch(url(), { method: "POST", body: text })).json()) as { sha256: string };
    const b = (await (await fetch(url(), { method: "POST", body: text })).json()) as { sha256: string };
    expect(a.sha256).toBe(b.sha256);
    expect(readdirSync(join(dir.path, "blobs", a.sha256.slice(0, 2)))).toEqual([a.sha256]);
  });
});

describe("download responses", () => {
  const data = randomBinary(1000, 5);
  const meta = {
    name: 'evil"\r\nX: y.bin',
    size: data.length,
    mime: "application/octet-stream",
    sha256: sha256Hex(data),
  };
  const source = (s: number, e: number) => data.slice(s, e);
  const get = (headers: Record<string, string> = {}) =>
    serveAttachment(new Request("http://x/", { headers }), meta, source);

  test("whole file with the safety headers", async () => {
    const res = get();
    expect(res.status).toBe(200);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-disposition")).toStartWith("attachment;");
    expect(res.headers.get("content-disposition")).not.toContain("\r");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("content-security-policy")).toContain("sandbox");
    expect(res.headers.get("etag")).toBe(`"${meta.sha256}"`);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(data);
  });

  test("ranges, If-Range, If-None-Match", async () => {
    const part = get({ range: "bytes=10-19" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 10-19/1000");
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(data.slice(10, 20));
    expect(get({ range: "bytes=2000-" }).status).toBe(416);
    expect(get({ range: "bytes=0-1", "if-range": '"other"' }).status).toBe(200);
    expect(get({ "if-none-match": `"${meta.sha256}"` }).status).toBe(304);
  });
});

describe("GridFS on FerretDB", () => {
  let mongo: MongoHandle;
  let client: MongoClient;
  let grid: GridStore;
  beforeAll(async () => {
    mongo = await startMongo();
    client = await mongo.client();
    grid = createGridStore(async () => client.db(mongo.dbName));
    await grid.ensureIndexes();
  });
  afterAll(async () => {
    await mongo?.destroy();
  });

  const id = "65f000000000000000000001";
  const data = bigPng(1_000_000, 11);
  const meta = {
    id,
    conversationId: "65f0000000000000000000aa",
    uploaderId: 10,
    name: "shot.png",
    size: data.length,
    mime: "image/png",
    sha256: sha256Hex(data),
    createdAt: 1_700_000_000_000,
  };

  async function readAll(s: ReadableStream<Uint8Array>) {
    return new Uint8Array(await new Response(s).arrayBuffer());
  }

  test("a copy is idempotent by id, and leftovers of a cut-off copy are replaced", async () => {
    const path = join(dir.path, "grid-src");
    await Bun.write(path, data);
    // Chunks a crashed copy left behind, with wrong bytes and no files document.
    const chunks = client.db(mongo.dbName).collection("attachments.chunks");
    const { ObjectId, Binary } = await import("mongodb");
    await chunks.insertOne({ files_id: new ObjectId(id), n: 0, data: new Binary(Buffer.from("garbage")) });
    expect(await grid.put(meta, path)).toBe("stored");
    expect(await grid.put(meta, path)).toBe("present");
    expect(await chunks.countDocuments({ files_id: new ObjectId(id) })).toBe(
      Math.ceil(data.length / (255 * 1024)),
    );
    expect(await grid.stat(id)).toEqual(meta);
    expect(await readAll(grid.read(id, 0, data.length))).toEqual(data);
  });

  test("ranges that start and end inside chunks", async () => {
    for (const [s, e] of [
      [0, 1],
      [100, 300_000],
      [261_119, 261_121],
      [600_000, data.length],
      [999_999, 1_000_000],
    ] as const) {
      expect(await readAll(grid.read(id, s, e))).toEqual(data.slice(s, e));
    }
  });

  test("remove takes the file and its chunks; removing again is fine", async () => {
    await grid.remove(id);
    await grid.remove(id);
    expect(await grid.stat(id)).toBeNull();
    const { ObjectId } = await import("mongodb");
    expect(
      await client
        .db(mongo.dbName)
        .collection("attachments.chunks")
        .countDocuments({ files_id: new ObjectId(id) }),
    ).toBe(0);
  });
});
