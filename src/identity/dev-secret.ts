import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
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
  if (existsSync(path)) {
    checkPrivate(path);
    return readFileSync(path, "utf8").trim();
  }
  mkdirSync(dirname(path), { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return secret;
}

/**
 * Whoever can write the key can mint tokens for any user, and whoever can read it can too: a
 * key file another user owns, or that group or others may read or write, is refused rather
 * than trusted.
 */
function checkPrivate(path: string): void {
  const st = statSync(path);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new Error(
      `${path} is owned by uid ${st.uid}, not by this service's user (uid ${uid}): refusing a key another user controls; delete it or chown it`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new Error(
      `${path} has mode ${(st.mode & 0o777).toString(8)}: group or others may read or change this signing key; chmod 600 it (or delete it for a new one)`,
    );
  }
}
