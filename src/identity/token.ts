import {
  createRemoteJWKSet,
  decodeJwt,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { unauthorized } from "../errors.ts";

/**
 * Local token verification: a forged or expired token is refused here, before it costs a
 * network call. Tokens are SimpleJWT access tokens: `token_type: "access"`, `user_id`, `exp`.
 */

export interface VerifiedToken {
  userId: number;
  expiresAt: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>;
}

function userIdOf(payload: JWTPayload): number {
  const raw = payload.user_id;
  const id = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id <= 0) {
    throw unauthorized("token has no valid user_id claim");
  }
  return id;
}

export function claimsToToken(payload: JWTPayload): VerifiedToken {
  if (payload.token_type !== "access") throw unauthorized("token is not an access token");
  if (typeof payload.exp !== "number") throw unauthorized("token has no expiry");
  return { userId: userIdOf(payload), expiresAt: payload.exp };
}

const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;

export function createTokenVerifier(opts: {
  secret?: string;
  jwksUrl?: string;
  clockToleranceS: number;
}): TokenVerifier | undefined {
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (opts.secret) {
    key = new TextEncoder().encode(opts.secret);
    algorithms = ["HS256"];
  } else if (opts.jwksUrl) {
    key = createRemoteJWKSet(new URL(opts.jwksUrl));
    algorithms = ["RS256", "ES256"];
  } else {
    return undefined;
  }
  // A client repeats its token on every REST call and reconnect; a signature check costs more
  // than the request it guards. Only tokens that verified are remembered, each for at most
  // VERIFIED_TTL_MS and never past its own expiry, keyed by the whole token (signature included).
  const verified = new Map<string, { token: VerifiedToken; until: number }>();
  return {
    async verify(token) {
      const now = Date.now();
      const hit = verified.get(token);
      if (hit) {
        if (now < hit.until) return hit.token;
        verified.delete(token);
      }
      try {
        const { payload } = await jwtVerify(token, key as Uint8Array, {
          algorithms,
          clockTolerance: opts.clockToleranceS,
          requiredClaims: ["exp"],
        });
        const result = claimsToToken(payload);
        if (verified.size >= VERIFIED_MAX) verified.clear();
        verified.set(token, {
          token: result,
          until: Math.min(now + VERIFIED_TTL_MS, (result.expiresAt + opts.clockToleranceS) * 1000),
        });
        return result;
      } catch (err) {
        if (err instanceof errors.JWTExpired) throw unauthorized("token has expired");
        if (err instanceof errors.JOSEError) throw unauthorized("token signature or format is invalid");
        throw err;
      }
    },
  };
}

/** Reads claims without checking the signature: only for naming the user a backend will then prove. */
export function unverifiedClaims(token: string): VerifiedToken {
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw unauthorized("token is not a JWT");
  }
  const t = claimsToToken(payload);
  if (t.expiresAt * 1000 < Date.now()) throw unauthorized("token has expired");
  return t;
}
