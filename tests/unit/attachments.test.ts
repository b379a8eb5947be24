import { describe, expect, test } from "bun:test";
import { sanitizeFilename } from "../../src/domain/filename.ts";
import { SNIFF_BYTES, sniff } from "../../src/domain/sniff.ts";
import { contentDisposition, parseRange } from "../../src/http/attachment-response.ts";
import { HTML_PAGE, makePdf, makePng, makeZip, randomBinary } from "../helpers/files.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const hex = (h: string) => Uint8Array.from(h.match(/../g)!.map((x) => Number.parseInt(x, 16)));

describe("sniff: the bytes decide the type", () => {
  const cases: Array<[string, Uint8Array, string]> = [
    ["a generated PNG", makePng(), "image/png"],
    ["a JPEG header", hex("ffd8ffe000104a46494600010100000100010000"), "image/jpeg"],
    ["GIF89a", bytes("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), "image/gif"],
    ["GIF87a", bytes("GIF87a\x01\x00\x01\x00"), "image/gif"],
    ["WebP", bytes("RIFF\x24\x00\x00\x00WEBPVP8 "), "image/webp"],
    [
      "RIFF that is a WAV, not WebP",
      bytes("RIFF\x24\x00\x00\x00WAVEfmt \x00\x01\x02"),
      "application/octet-stream",
    ],
    ["a generated PDF", makePdf(), "application/pdf"],
    ["a generated ZIP", makeZip(), "application/zip"],
    ["an empty ZIP", hex(`504b0506${"00".repeat(18)}`), "application/zip"],
    ["plain text", bytes("Homework: chapters 3 and 4.\r\nDue Monday.\n"), "text/plain"],
    [
      "TypeScript source",
      bytes("export const f = (x: number) => x * 2;\n\tconsole.log(f(2));\n"),
      "text/plain",
    ],
    ["Python source", bytes("#!/usr/bin/env python3\nprint('héllo ✓')\n"), "text/plain"],
    ["an HTML page", HTML_PAGE, "text/html"],
    ["HTML with a BOM and blank lines", bytes("\uFEFF\n\n  <html><body>x</body></html>"), "text/html"],
    ["HTML that starts with text", bytes("hello\n<script>alert(1)</script>"), "text/html"],
    [
      "an SVG",
      bytes('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
      "image/svg+xml",
    ],
    ["an SVG behind an XML prolog", bytes('<?xml version="1.0"?>\n<svg xmlns="x"/>'), "image/svg+xml"],
    ["plain XML", bytes('<?xml version="1.0"?><note/>'), "application/xml"],
    ["text that starts with BM", bytes("BMW service notes\n"), "text/plain"],
    ["a real BMP-looking binary", concat(bytes("BM"), randomBinary(64)), "image/bmp"],
    ["an ELF binary", concat(hex("7f454c46020101"), randomBinary(64)), "application/x-executable"],
    ["a gzip", concat(hex("1f8b0800"), randomBinary(32)), "application/gzip"],
    ["random bytes", randomBinary(4096), "application/octet-stream"],
    ["text with a NUL", bytes("abc\u0000def"), "application/octet-stream"],
    ["an empty file", new Uint8Array(0), "text/plain"],
  ];
  for (const [name, input, mime] of cases) {
    test(`${name} → ${mime}`, () => expect(sniff(input).mime).toBe(mime));
  }

  test("only the four raster image types are inline", () => {
    expect(sniff(makePng()).inlineImage).toBe(true);
    for (const b of [makePdf(), HTML_PAGE, bytes("<svg/>"), bytes("text")])
      expect(sniff(b).inlineImage).toBe(false);
  });

  test("a multi-byte character cut by the sniff window still reads as text", () => {
    const text = "é".repeat(SNIFF_BYTES); // 2 bytes each
    const window = bytes(text).subarray(0, SNIFF_BYTES - 1); // ends in the middle of one
    expect(sniff(window).mime).toBe("text/plain");
    // A broken sequence in the middle is not text.
    expect(sniff(concat(concat(bytes("abc"), hex("c3")), bytes("def"))).mime).toBe(
      "application/octet-stream",
    );
  });
});

describe("file names", () => {
  const cases: Array<[string | undefined, string]> = [
    ["report.pdf", "report.pdf"],
    ["../../etc/passwd", "passwd"],
    ["C:\\Users\\me\\Desktop\\shot.png", "shot.png"],
    ["invoice\u202Efdp.exe", "invoicefdp.exe"],
    ['a"b<c>d.txt', "a_b_c_d.txt"],
    ["line\r\nbreak.txt", "linebreak.txt"],
    ["  spaced   out  .txt  ", "spaced out .txt"],
    [".hidden", "hidden"],
    ["trailing...", "trailing"],
    ["", "file"],
    [undefined, "file"],
    ["///", "file"],
    ["Übung – 𝒳.md", "Übung – 𝒳.md"],
  ];
  for (const [raw, clean] of cases)
    test(`${JSON.stringify(raw)} → ${JSON.stringify(clean)}`, () => {
      expect(sanitizeFilename(raw)).toBe(clean);
    });

  test("long names are cut, keeping the extension", () => {
    const name = sanitizeFilename(`${"a".repeat(500)}.png`);
    expect([...name].length).toBe(200);
    expect(name.endsWith(".png")).toBe(true);
  });

  test("Content-Disposition has an ASCII fallback and the exact UTF-8 name", () => {
    expect(contentDisposition("attachment", "Übung (1).pdf")).toBe(
      `attachment; filename="_bung (1).pdf"; filename*=UTF-8''%C3%9Cbung%20%281%29.pdf`,
    );
  });
});

describe("byte ranges", () => {
  const cases: Array<[string | null, number, ReturnType<typeof parseRange>]> = [
    [null, 100, "all"],
    ["bytes=0-9", 100, [0, 10]],
    ["bytes=90-", 100, [90, 100]],
    ["bytes=-10", 100, [90, 100]],
    ["bytes=-500", 100, [0, 100]],
    ["bytes=50-1000", 100, [50, 100]],
    ["bytes=100-", 100, "unsatisfiable"],
    ["bytes=5-2", 100, "unsatisfiable"],
    ["bytes=-0", 100, "unsatisfiable"],
    ["bytes=0-1,5-6", 100, "all"],
    ["items=0-1", 100, "all"],
  ];
  for (const [header, size, want] of cases)
    test(`${header} of ${size}`, () => {
      expect(parseRange(header, size)).toEqual(want);
    });
});

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
