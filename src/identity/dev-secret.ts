import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * Running on the embedded default with no JWT_SECRET, the service signs and checks dev tokens
 * with a random key kept beside the SQLite file, rather than a well-known default that would
 * let anyone mint tokens. `npm run token` reads the same file.
 */
export function devSecretPath(sqlitePath: string): string {
  return join(dirname(sqlitePath), "dev-jwt-secret");
}

export function loadOrCreateDevSecret(sqlitePath: string): string {
  const path = devSecretPath(sqlitePath);
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  mkdirSync(dirname(path), { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return secret;
}
