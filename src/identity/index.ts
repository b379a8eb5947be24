import sampleDirectory from "../../examples/directory.json";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { loadOrCreateDevSecret } from "./dev-secret.ts";
import { createDirectoryIdentity, directorySchema, readDirectoryFile } from "./directory.ts";
import { createDjangoIdentity } from "./django.ts";
import { createTokenVerifier } from "./token.ts";
import type { Identity } from "./types.ts";

/** Picks the identity backend the configuration names (docs/protocol.md, "Identity and access"). */
export function createIdentity(config: Config, logger: Logger): { identity: Identity; notes: string[] } {
  const notes: string[] = [];
  if (config.DJANGO_BASE_URL) {
    const verifier = createTokenVerifier({
      secret: config.JWT_SECRET,
      jwksUrl: config.JWT_JWKS_URL,
      clockToleranceS: config.JWT_CLOCK_TOLERANCE_S,
    });
    if (!verifier) notes.push("no JWT_SECRET/JWT_JWKS_URL: every new token is proven by a call to Django");
    const identity = createDjangoIdentity({
      baseUrl: config.DJANGO_BASE_URL,
      forwardCookies: config.DJANGO_FORWARD_COOKIES,
      timeoutMs: config.DJANGO_TIMEOUT_MS,
      cacheTtlMs: config.IDENTITY_CACHE_TTL_MS,
      verifier,
      logger,
    });
    return { identity, notes };
  }

  let secret = config.JWT_SECRET;
  if (!secret && !config.JWT_JWKS_URL) {
    secret = loadOrCreateDevSecret(config.SQLITE_PATH);
    notes.push("no JWT_SECRET: dev tokens are signed with a random key kept beside the SQLite file");
  }
  const verifier = createTokenVerifier({
    secret,
    jwksUrl: config.JWT_JWKS_URL,
    clockToleranceS: config.JWT_CLOCK_TOLERANCE_S,
  });
  if (!verifier) throw new Error("unreachable: a directory identity always has a verifier");
  let directory = directorySchema.parse(sampleDirectory);
  if (config.DIRECTORY_FILE) directory = readDirectoryFile(config.DIRECTORY_FILE);
  else
    notes.push("no DIRECTORY_FILE or DJANGO_BASE_URL: using the sample directory (examples/directory.json)");
  return { identity: createDirectoryIdentity(directory, verifier), notes };
}
