import { SignJWT } from "jose";
import sampleDirectory from "../../examples/directory.json";
import type { Config } from "../config.ts";
import { badRequest, notFound } from "../errors.ts";
import type { HttpDeps } from "../http/app.ts";
import { loadOrCreateDevSecret } from "../identity/dev-secret.ts";
import { type Directory, directorySchema, readDirectoryFile } from "../identity/directory.ts";
import type { Logger } from "../log.ts";
import { buildDemoAssets } from "./bundle.ts";
import { guardLocalRequest, isJson, mintingOffReason } from "./guard.ts";

/**
 * `/demo`: a small chat page built on the client SDK; on by default only on the embedded
 * default (no Django, no key), otherwise with DEMO_PAGE=true.
 *
 * With the local directory identity (no Django, no JWKS) it also offers a user picker that
 * mints 15-minute dev tokens, to a browser on this machine only (see guard.ts for who counts).
 * Against Django, paste a real token.
 */

type App = Parameters<NonNullable<HttpDeps["extend"]>>[0];

const DEV_TOKEN_TTL_S = 15 * 60;

export interface DemoRouteOptions {
  config: Config;
  /** True when the service runs on the directory identity built from `config`. */
  directoryIdentity: boolean;
  logger: Logger;
}

export async function createDemoRoutes(opts: DemoRouteOptions): Promise<(app: App) => void> {
  const { html, js } = await buildDemoAssets();
  const offReason = opts.directoryIdentity ? mintingOffReason(opts.config) : "not the directory identity";
  const dev = offReason ? null : devTokenMinter(opts);
  opts.logger.warn("DEMO_PAGE is on: /demo is served", {
    userPicker: dev ? "on, for browsers on this machine" : `off: ${offReason}`,
  });

  const headers = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "content-security-policy":
      "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:",
  };

  return (app) => {
    app.get("/demo", (c) => c.html(html, 200, headers));
    app.get("/demo/app.js", (c) =>
      c.body(js, 200, { ...headers, "content-type": "text/javascript; charset=utf-8" }),
    );

    app.get("/demo/users", (c) => {
      if (!dev) throw notFound("this server mints no dev tokens; paste a token");
      guardLocalRequest(peerAddress(c.env, c.req.raw), c.req.raw);
      return c.json(
        dev.users.map((u) => ({
          id: u.id,
          is_mentor: u.is_mentor,
          first_name: u.first_name,
          last_name: u.last_name,
        })),
      );
    });

    app.post("/demo/token", async (c) => {
      if (!dev) throw notFound("this server mints no dev tokens; paste a token");
      guardLocalRequest(peerAddress(c.env, c.req.raw), c.req.raw);
      // A cross-site page can POST text/plain without asking; JSON needs a preflight first.
      if (!isJson(c.req.raw)) {
        const message = "Content-Type must be application/json";
        return c.json({ error: { code: "unsupported_media_type", message } }, 415);
      }
      const body = (await c.req.json().catch(() => null)) as { user_id?: unknown } | null;
      const userId = body?.user_id;
      if (typeof userId !== "number" || !Number.isSafeInteger(userId)) {
        throw badRequest("user_id: expected a whole number");
      }
      if (!dev.users.some((u) => u.id === userId)) throw notFound("no such user in the directory");
      return c.json({ token: await dev.mint(userId), expires_in: DEV_TOKEN_TTL_S });
    });
  };
}

/** The directory and signing key the service itself uses, or null when it cannot mint. */
function devTokenMinter(opts: DemoRouteOptions) {
  const { config } = opts;
  if (!opts.directoryIdentity || config.DJANGO_BASE_URL || config.JWT_JWKS_URL) return null;
  const secret = new TextEncoder().encode(config.JWT_SECRET ?? loadOrCreateDevSecret(config.SQLITE_PATH));
  const directory: Directory = config.DIRECTORY_FILE
    ? readDirectoryFile(config.DIRECTORY_FILE)
    : directorySchema.parse(sampleDirectory);
  return {
    users: directory.users,
    mint: (userId: number) =>
      new SignJWT({ token_type: "access", user_id: userId, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuedAt()
        .setExpirationTime(`${DEV_TOKEN_TTL_S}s`)
        .sign(secret),
  };
}

function peerAddress(env: unknown, req: Request): string | undefined {
  const server = env as { requestIP?: (r: Request) => { address: string } | null } | undefined;
  return server?.requestIP?.(req)?.address;
}
