/**
 * What a file is, decided from its first bytes. The client's Content-Type and file name are
 * never trusted: a page served as image/png that holds HTML is how stored XSS gets in.
 * Looks at most SNIFF_BYTES; callers pass what they have when the file is shorter.
 */

export const SNIFF_BYTES = 8192;

export interface Sniffed {
  mime: string;
  /** Only these are ever shown inline by the server: the browser decodes them as images, nothing else. */
  inlineImage: boolean;
}

const startsWith = (b: Uint8Array, sig: ReadonlyArray<number>, at = 0) =>
  b.length >= at + sig.length && sig.every((x, i) => b[at + i] === x);

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

// Binary formats are recognised by magic numbers. The ones not allowed by default are listed
// too, so a refusal can name what was sent rather than "unknown".
// A weak signature (two or three printable bytes) only counts when the bytes are not text:
// a note that starts "BM" or "MZ" is a note.
const MAGIC: ReadonlyArray<{
  mime: string;
  sig: number[];
  at?: number;
  also?: [number[], number];
  weak?: boolean;
}> = [
  { mime: "image/png", sig: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { mime: "image/jpeg", sig: [0xff, 0xd8, 0xff] },
  { mime: "image/gif", sig: ascii("GIF87a") },
  { mime: "image/gif", sig: ascii("GIF89a") },
  { mime: "image/webp", sig: ascii("RIFF"), also: [ascii("WEBP"), 8] },
  { mime: "application/pdf", sig: ascii("%PDF-") },
  { mime: "application/zip", sig: [0x50, 0x4b, 0x03, 0x04] },
  // An empty archive: legal, and still a ZIP.
  { mime: "application/zip", sig: [0x50, 0x4b, 0x05, 0x06] },
  { mime: "image/bmp", sig: ascii("BM"), weak: true },
  { mime: "image/tiff", sig: [0x49, 0x49, 0x2a, 0x00] },
  { mime: "image/tiff", sig: [0x4d, 0x4d, 0x00, 0x2a] },
  { mime: "image/x-icon", sig: [0x00, 0x00, 0x01, 0x00] },
  { mime: "application/gzip", sig: [0x1f, 0x8b] },
  { mime: "application/x-7z-compressed", sig: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { mime: "application/vnd.rar", sig: ascii("Rar!"), weak: true },
  { mime: "application/x-executable", sig: [0x7f, 0x45, 0x4c, 0x46] },
  { mime: "application/x-msdownload", sig: ascii("MZ"), weak: true },
  { mime: "application/x-mach-binary", sig: [0xcf, 0xfa, 0xed, 0xfe] },
  { mime: "application/wasm", sig: [0x00, 0x61, 0x73, 0x6d] },
  { mime: "audio/mpeg", sig: ascii("ID3"), weak: true },
  { mime: "video/mp4", sig: ascii("ftyp"), at: 4, weak: true },
  { mime: "application/ogg", sig: ascii("OggS") },
  { mime: "image/x-xcf", sig: ascii("gimp xcf") },
];

const INLINE = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/** Markup a browser would run if it ever rendered it: never text/plain, never inline. */
const HTML_TAGS =
  /^<(?:!doctype\s+html|html|head|body|script|iframe|style|title|a\s|div|p|br|img|svg|object|embed|meta|link|table|h1|b\s|b>|font|!--)/i;

export function sniff(head: Uint8Array): Sniffed {
  let text: string | null | undefined;
  for (const m of MAGIC) {
    if (!startsWith(head, m.sig, m.at ?? 0) || (m.also && !startsWith(head, m.also[0], m.also[1]))) continue;
    if (m.weak) {
      text ??= decodeText(head);
      if (text !== null) continue;
    }
    return { mime: m.mime, inlineImage: INLINE.has(m.mime) };
  }
  text ??= decodeText(head);
  if (text === null) return { mime: "application/octet-stream", inlineImage: false };
  const markup = markupType(text);
  return { mime: markup ?? "text/plain", inlineImage: false };
}

/** Strips a BOM and leading whitespace/comments the way browsers skip them before deciding. */
function markupType(text: string): string | null {
  const t = text.replace(/^\uFEFF/, "").trimStart();
  if (/^<\?xml/i.test(t))
    return /<svg[\s>]/i.test(t.slice(0, SNIFF_BYTES)) ? "image/svg+xml" : "application/xml";
  if (/^<svg[\s>]/i.test(t) || /^<!doctype\s+svg/i.test(t)) return "image/svg+xml";
  if (HTML_TAGS.test(t)) return "text/html";
  // HTML that does not lead with a tag still renders if a browser sniffs it: look a little further.
  if (/<(?:script|iframe|html|body|svg|object|embed)[\s>/]/i.test(t.slice(0, 1024))) return "text/html";
  return null;
}

/**
 * UTF-8 (or ASCII) text with the usual whitespace and no other control characters; source
 * files are text. A multi-byte character cut at the end of the window is not held against it.
 * UTF-16 is not: it is served as text/plain; charset=utf-8, and would arrive garbled.
 */
function decodeText(head: Uint8Array): string | null {
  let end = head.length;
  {
    // Back off over a trailing incomplete sequence (at most 3 continuation bytes and a lead byte).
    let i = head.length - 1;
    let back = 0;
    while (i >= 0 && back < 3 && (head[i]! & 0xc0) === 0x80) {
      i--;
      back++;
    }
    if (i >= 0 && head[i]! >= 0xc0) {
      const need = head[i]! >= 0xf0 ? 4 : head[i]! >= 0xe0 ? 3 : 2;
      if (head.length - i < need) end = i;
    }
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(0, end));
  } catch {
    return null;
  }
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // Tab, LF, FF, CR and ESC (terminal colours in logs) are fine; NUL and other C0 controls are not.
    if (c < 0x20 && c !== 9 && c !== 10 && c !== 12 && c !== 13 && c !== 27) return null;
    if (c === 0x7f) return null;
  }
  return text;
}
