import { unauthorized } from "../errors.ts";
import type { Credentials, Identity, Principal } from "../identity/types.ts";
import { bearerFromHeader, bearerFromSubprotocol, parseCookies } from "./credentials.ts";
import type { FailedAuthGuard } from "./failed-auth.ts";

/**
 * The one way in for both transports: finds the bearer token, proves it with the identity
 * backend, and counts a failure against the caller's address.
 */

export interface AuthDeps {
  identity: Identity;
  /** Failed-login budget per client address; absent means unlimited. */
  authFailures?: FailedAuthGuard;
  clientIp?: (req: Request) => string;
}

export interface TokenSources {
  /** The upgrade's `?token=`; tried before the header. */
  queryToken?: string;
  /** Browsers cannot set headers on a WebSocket: accept `Sec-WebSocket-Protocol: bearer, <token>`. */
  subprotocol?: boolean;
  /** The refusal when no token is found. */
  missing?: string;
  /** The caller's address when the caller has read it already: each read is a system call. */
  ip?: string;
}

export type Authenticate = (
  req: Request,
  sources?: TokenSources,
) => Promise<{ principal: Principal; cred: Credentials }>;

export function createAuthenticate(deps: AuthDeps): Authenticate {
  const guard = deps.authFailures?.guard ?? (<T>(_ip: string, f: () => Promise<T>) => f());
  return async (req, sources = {}) => {
    const h = req.headers;
    const token =
      sources.queryToken ??
      bearerFromHeader(h.get("authorization")) ??
      (sources.subprotocol ? bearerFromSubprotocol(h.get("sec-websocket-protocol")) : undefined);
    const cred = token ? { token, cookies: parseCookies(h.get("cookie")) } : undefined;
    const ip = sources.ip ?? deps.clientIp?.(req) ?? "unknown";
    const principal = await guard(ip, async () => {
      if (!cred) throw unauthorized(sources.missing);
      return deps.identity.authenticate(cred);
    });
    // Unreachable without credentials (the guard threw); narrows `cred` for the caller.
    if (!cred) throw unauthorized(sources.missing);
    return { principal, cred };
  };
}
