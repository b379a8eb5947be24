/**
 * File names come from the uploader and are shown to the other participant, in JSON, in the
 * demo page and in Content-Disposition. They are cleaned once, at upload, so every echo is safe:
 * no path, no control or bidi characters (an "invoice‮fdp.exe" that reads as "invoiceexe.pdf"),
 * bounded length, and never empty. (The HTTP header form is in http/attachment-response.ts.)
 */

const MAX_NAME_CHARS = 200;

// C0/C1 controls, bidi embeddings/overrides/isolates, zero-widths, line/paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/g;

export function sanitizeFilename(raw: string | undefined | null, fallback = "file"): string {
  let name = (raw ?? "").normalize("NFC");
  // The last path segment only, whichever separator the client's OS used.
  name = name.split(/[/\\]/).pop() ?? "";
  name = name.replace(UNSAFE, "");
  // Quotes and the characters Windows refuses would break the header or the save dialog.
  name = name.replace(/["<>:|?*]/g, "_");
  name = name.replace(/\s+/g, " ").trim();
  // Leading dots hide the file on Unix; trailing dots and spaces vanish on Windows.
  name = name.replace(/^\.+/, "").replace(/[. ]+$/, "");
  if ([...name].length > MAX_NAME_CHARS) {
    const chars = [...name];
    const dot = name.lastIndexOf(".");
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : "";
    name = chars.slice(0, MAX_NAME_CHARS - [...ext].length).join("") + ext;
  }
  return name.length > 0 ? name : fallback;
}
