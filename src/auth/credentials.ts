import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Where a token may come from. Browsers cannot set headers on a WebSocket, and query strings
 * end up in access logs, so the upgrade also accepts `Sec-WebSocket-Protocol: bearer, <token>`.
 */

export const BEARER_SUBPROTOCOL = "bearer";

export function bearerFromHeader(header: string | null): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export function bearerFromSubprotocol(header: string | null): string | undefined {
  if (!header) return undefined;
  const parts = header.split(",").map((p) => p.trim());
  const i = parts.findIndex((p) => p.toLowerCase() === BEARER_SUBPROTOCOL);
  const token = i >= 0 ? parts[i + 1] : undefined;
  return token || undefined;
}

// Most requests carry no cookie: they share one empty set instead of each keeping its own.
const NO_COOKIES: Record<string, string> = Object.freeze({});

export function parseCookies(header: string | null): Record<string, string> {
  if (!header) return NO_COOKIES;
  const out: Record<string, string> = {};
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name && !(name in out)) out[name] = value;
  }
  return out;
}

/**
 * Compares a presented secret with the expected one in time that does not depend on where
 * they differ. Both are hashed first, so their lengths do not leak either.
 */
export function sameSecret(given: string | undefined, expected: string): boolean {
  const digest = (v: string) => createHash("sha256").update(v).digest();
  return timingSafeEqual(digest(given ?? ""), digest(expected)) && given !== undefined;
}
