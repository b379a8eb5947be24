import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";

/**
 * Who may mint dev tokens. Anyone who can mint can act as anyone, so the user picker is for a
 * browser on this machine talking straight to this service, and for nothing else:
 *
 * - the peer address is loopback, and the request carries no forwarding header: a reverse proxy
 *   on the same host makes every client loopback, but it names the real client in those headers;
 * - the Host is localhost, 127.0.0.1 or [::1]: a DNS-rebinding page reaches this port under its
 *   own name, and picks Origin and Host alike, so comparing the two proves nothing;
 * - an Origin, when sent, is that same host, and the mint's body is JSON, which a cross-site
 *   page cannot send without a CORS preflight.
 *
 * At start, minting also needs HOST to be loopback (or DEMO_MINT_PUBLIC=true): a proxy that adds
 * no forwarding header and rewrites Host to the upstream would pass every check above, and a
 * service listening on every interface is the one such a proxy is most likely to sit in front of.
 */

const LOOPBACK_PEER = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;
const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i;
const LOCAL_HOSTNAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);
const FORWARDING_HEADERS = ["forwarded", "via", "x-real-ip", "x-forwarded-for", "x-forwarded-host"];

export function listensOnLoopback(host: string): boolean {
  return LOOPBACK_HOST.test(host);
}

/** Null when this configuration may mint; otherwise why not, for the log and the banner. */
export function mintingOffReason(
  config: Pick<Config, "HOST" | "DEMO_MINT_PUBLIC" | "DJANGO_BASE_URL" | "JWT_JWKS_URL">,
): string | null {
  if (config.DJANGO_BASE_URL || config.JWT_JWKS_URL) return "tokens come from Django or a JWKS: paste one";
  if (!listensOnLoopback(config.HOST) && !config.DEMO_MINT_PUBLIC) {
    return `HOST=${config.HOST} is not loopback (set DEMO_MINT_PUBLIC=true to mint anyway): paste a token`;
  }
  return null;
}

const refuse = (message: string) => new AppError(403, "forbidden", message);

/** Throws unless `req` comes from a browser or tool on this machine, straight to this service. */
export function guardLocalRequest(peerAddress: string | undefined, req: Request): void {
  for (const name of FORWARDING_HEADERS) {
    if (req.headers.has(name)) throw refuse("dev tokens are not minted for requests through a proxy");
  }
  if (!peerAddress || !LOOPBACK_PEER.test(peerAddress)) {
    throw refuse("dev tokens are only minted for requests from this machine");
  }
  const host = req.headers.get("host") ?? "";
  if (!LOCAL_HOSTNAMES.has(hostnameOf(`http://${host}`) ?? "")) {
    throw refuse("dev tokens are only minted for localhost, 127.0.0.1 or [::1]");
  }
  const origin = req.headers.get("origin");
  if (origin !== null && hostOf(origin) !== host.toLowerCase()) {
    throw refuse("dev tokens are only minted for this service's own pages");
  }
}

export function isJson(req: Request): boolean {
  const type = req.headers.get("content-type") ?? "";
  return type.split(";")[0]!.trim().toLowerCase() === "application/json";
}

function hostnameOf(url: string): string | null {
  try {
    return new URL(url).hostname;
  } catch {
    return null;
  }
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}
