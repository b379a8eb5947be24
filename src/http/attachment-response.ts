/**
 * The download response. Whatever was uploaded, the browser must treat it as data: the sniffed
 * type with nosniff, a download (not a page) for everything but the four raster image types, and
 * a CSP that would stop a script even if a browser did render something. ETag and single byte
 * ranges make resumed downloads and re-opened chats cheap.
 */

export interface Servable {
  name: string;
  size: number;
  mime: string;
  sha256: string;
}

/** Bytes [start, end) of the file. */
export type ByteSource = (start: number, end: number) => BodyInit;

const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

export const ATTACHMENT_CSP =
  "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'";

export function attachmentHeaders(meta: Servable): Record<string, string> {
  return {
    "content-type": meta.mime.startsWith("text/") ? `${meta.mime}; charset=utf-8` : meta.mime,
    "x-content-type-options": "nosniff",
    "content-disposition": contentDisposition(
      INLINE_TYPES.has(meta.mime) ? "inline" : "attachment",
      meta.name,
    ),
    "content-security-policy": ATTACHMENT_CSP,
    etag: `"${meta.sha256}"`,
    // Private: it was fetched with someone's token. An id never changes its bytes, but a deleted
    // message's attachment must stop being served, so not for long.
    "cache-control": "private, max-age=300",
    "accept-ranges": "bytes",
  };
}

/** A single range of a file of `size` bytes, as [start, end); "all" to send the whole file. */
export function parseRange(header: string | null, size: number): [number, number] | "all" | "unsatisfiable" {
  if (!header) return "all";
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, or a unit we do not know: RFC 9110 lets us answer with the whole file.
  if (!m || (m[1] === "" && m[2] === "")) return "all";
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size];
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || last < start) return "unsatisfiable";
  return [start, last + 1];
}

function etagMatches(header: string | null, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

export function serveAttachment(req: Request, meta: Servable, source: ByteSource): Response {
  const headers = attachmentHeaders(meta);
  if (etagMatches(req.headers.get("if-none-match"), headers.etag!)) {
    return new Response(null, { status: 304, headers });
  }
  let range = parseRange(req.headers.get("range"), meta.size);
  const ifRange = req.headers.get("if-range");
  // A range against another version of the file would splice two files together.
  if (ifRange !== null && ifRange.trim() !== headers.etag) range = "all";
  if (range === "unsatisfiable") {
    return new Response(null, {
      status: 416,
      headers: { ...headers, "content-range": `bytes */${meta.size}` },
    });
  }
  if (range === "all") {
    return new Response(meta.size === 0 ? null : source(0, meta.size), {
      status: 200,
      headers: { ...headers, "content-length": String(meta.size) },
    });
  }
  const [start, end] = range;
  return new Response(source(start, end), {
    status: 206,
    headers: {
      ...headers,
      "content-range": `bytes ${start}-${end - 1}/${meta.size}`,
      "content-length": String(end - start),
    },
  });
}

/**
 * RFC 6266: an ASCII fallback for old agents and the exact name as RFC 5987 UTF-8. The name was
 * sanitised at upload; this only has to keep the header well-formed.
 */
export function contentDisposition(kind: "inline" | "attachment", name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_");
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
