import { z } from "zod";
import { AppError, badRequest } from "../errors.ts";
import { tooLarge } from "../store/blobs.ts";

/**
 * The two ways a file arrives — the raw body (name in X-Filename) or multipart/form-data
 * (field `file`) — as one stream of its bytes. Nothing is buffered whole: Request.formData()
 * would hold the entire upload in memory before a size check could run.
 */

export interface UploadBody {
  /** As the client sent it; sanitised by the caller. */
  name: string | undefined;
  /** The client's guess, kept only for the log: the bytes decide the type. */
  clientType: string | undefined;
  chunks: AsyncIterable<Uint8Array>;
}

/** Part headers, the boundary lines and small extra fields: what multipart adds to the file. */
const MULTIPART_OVERHEAD = 64 * 1024;
const MAX_PART_HEADER_BYTES = 16 * 1024;

const xFilename = z
  .string()
  .max(4096, "X-Filename is at most 4096 characters")
  .transform((v, ctx) => {
    try {
      return decodeURIComponent(v);
    } catch {
      ctx.addIssue({ code: "custom", message: "X-Filename must be URL-encoded UTF-8" });
      return z.NEVER;
    }
  });

// RFC 2046: 1-70 characters from a restricted set; quoted when it holds some of them.
const boundarySchema = z
  .string()
  .min(1)
  .max(70)
  .regex(/^[0-9A-Za-z'()+_,\-./:=? ]+$/, "multipart boundary has characters RFC 2046 does not allow");

export function readUpload(req: Request, maxBytes: number): UploadBody {
  const type = req.headers.get("content-type") ?? undefined;
  const length = req.headers.get("content-length");
  const multipart = type !== undefined && /^multipart\/form-data\s*;/i.test(type);
  // Refuse what announces itself as too big before reading a byte of it.
  if (length !== null && Number(length) > maxBytes + (multipart ? MULTIPART_OVERHEAD : 0)) {
    throw tooLarge(maxBytes);
  }
  if (!req.body) throw badRequest("the request has no body; send the file as the body or as field `file`");
  if (!multipart) {
    const raw = req.headers.get("x-filename");
    let name: string | undefined;
    if (raw !== null) {
      const parsed = xFilename.safeParse(raw);
      if (!parsed.success) throw badRequest(parsed.error.issues[0]?.message ?? "bad X-Filename");
      name = parsed.data;
    }
    return { name, clientType: type, chunks: iterate(req.body) };
  }
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  const boundary = boundarySchema.safeParse(m?.[1] ?? m?.[2]);
  if (!boundary.success) throw badRequest("multipart/form-data needs a valid boundary parameter");
  return multipartFile(req.body, boundary.data);
}

async function* iterate(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    // An upload refused part-way (too large, wrong type) stops reading here.
    await reader.cancel().catch(() => {});
  }
}

const HEADERS_END = Buffer.from("\r\n\r\n");

/**
 * A streaming multipart/form-data reader that yields the `file` part's bytes. The parts before
 * it are skipped (up to MULTIPART_OVERHEAD); what follows it is not read. Its header is parsed
 * when the stream is first pulled, so the caller learns the name only by awaiting `name`.
 */
function multipartFile(body: ReadableStream<Uint8Array>, boundary: string): UploadBody {
  const source = iterate(body);
  let buf = Buffer.alloc(0);
  let ended = false;
  const pull = async (): Promise<boolean> => {
    if (ended) return false;
    const next = await source.next();
    if (next.done) {
      ended = true;
      return false;
    }
    buf = buf.length === 0 ? Buffer.from(next.value) : Buffer.concat([buf, next.value]);
    return true;
  };
  const opening = Buffer.from(`--${boundary}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const early = () => badRequest("the multipart body ended before its closing boundary");

  const header = { name: undefined as string | undefined, type: undefined as string | undefined };
  let skipped = 0;

  /** Moves to the `file` part's body; false when the body holds no such part. */
  const findFilePart = async (): Promise<boolean> => {
    // Preamble, then the first boundary line.
    for (;;) {
      const at = buf.indexOf(opening);
      if (at >= 0) {
        buf = buf.subarray(at + opening.length);
        break;
      }
      if (buf.length > MULTIPART_OVERHEAD) throw badRequest("no multipart boundary found");
      if (!(await pull())) throw early();
    }
    for (;;) {
      while (buf.length < 2) if (!(await pull())) throw early();
      if (buf[0] === 0x2d && buf[1] === 0x2d) return false; // "--": the closing boundary
      let end = buf.indexOf(HEADERS_END);
      while (end < 0) {
        if (buf.length > MAX_PART_HEADER_BYTES) throw badRequest("multipart part headers are too long");
        if (!(await pull())) throw early();
        end = buf.indexOf(HEADERS_END);
      }
      const headers = buf.subarray(0, end).toString("utf8");
      buf = buf.subarray(end + HEADERS_END.length);
      const disposition = /^content-disposition:(.*)$/im.exec(headers)?.[1] ?? "";
      const field = param(disposition, "name");
      if (field === "file") {
        header.name = paramExt(disposition, "filename") ?? param(disposition, "filename");
        header.type = /^content-type:\s*(.*)$/im.exec(headers)?.[1]?.trim();
        return true;
      }
      // Another field: skip its value, bounded.
      for (;;) {
        const at = buf.indexOf(delimiter);
        if (at >= 0) {
          skipped += at;
          buf = buf.subarray(at + delimiter.length);
          break;
        }
        const keep = delimiter.length - 1;
        skipped += Math.max(0, buf.length - keep);
        buf = buf.subarray(Math.max(0, buf.length - keep));
        if (skipped > MULTIPART_OVERHEAD)
          throw new AppError(413, "too_large", "multipart fields are too large");
        if (!(await pull())) throw early();
      }
    }
  };

  let located: Promise<boolean> | undefined;
  const locate = () => {
    located ??= findFilePart();
    return located;
  };

  async function* fileBytes(): AsyncGenerator<Uint8Array> {
    try {
      if (!(await locate())) throw badRequest("the multipart body has no field named `file`");
      for (;;) {
        const at = buf.indexOf(delimiter);
        if (at >= 0) {
          if (at > 0) yield buf.subarray(0, at);
          return;
        }
        // Everything but a possible partial delimiter at the end is file content.
        const safe = buf.length - (delimiter.length - 1);
        if (safe > 0) {
          yield buf.subarray(0, safe);
          buf = buf.subarray(safe);
        }
        if (!(await pull())) throw early();
      }
    } finally {
      await source.return(undefined);
    }
  }

  const chunks = fileBytes();
  return {
    get name() {
      return header.name;
    },
    get clientType() {
      return header.type;
    },
    chunks,
  };
}

/** Reads the part headers now, so `name` is known before the bytes are stored. */
export async function prime(upload: UploadBody): Promise<UploadBody> {
  // Only multipart has anything to prime: the first pull of its generator parses the headers.
  const it = upload.chunks[Symbol.asyncIterator]();
  const first = await it.next();
  async function* rest(): AsyncGenerator<Uint8Array> {
    if (first.done) return;
    yield first.value;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value;
    }
  }
  return { name: upload.name, clientType: upload.clientType, chunks: rest() };
}

function param(header: string, key: string): string | undefined {
  const m = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(header);
  if (m) return m[1]!.replace(/\\(.)/g, "$1");
  return new RegExp(`;\\s*${key}=([^;\\s]+)`, "i").exec(header)?.[1];
}

/** RFC 5987 `filename*=UTF-8''…`, which browsers send for non-ASCII names in some cases. */
function paramExt(header: string, key: string): string | undefined {
  const m = new RegExp(`;\\s*${key}\\*=(?:UTF-8|utf-8)''([^;\\s]+)`).exec(header);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
}
