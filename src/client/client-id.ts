/**
 * Idempotency keys for `message` frames. getRandomValues works on plain-http pages too, where
 * crypto.randomUUID does not (it needs a secure context).
 */
export function newClientId(): string {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return `c${Date.now().toString(36)}-${hex}`;
}
