import { SignJWT } from "jose";
import sampleDirectory from "../../examples/directory.json";
import type { Config } from "../config.ts";
import { AppError, badRequest, forbidden, notFound } from "../errors.ts";
import type { HttpDeps } from "../http/app.ts";
import { loadOrCreateDevSecret } from "../identity/dev-secret.ts";
import { type Directory, directorySchema, readDirectoryFile } from "../identity/directory.ts";
import type { Logger } from "../log.ts";
import { buildDemoAssets } from "./bundle.ts";

/**
 * `/demo`: a small chat page built on the client SDK, on only with DEMO_PAGE=true.
 *
 * With the local directory identity (no Django, no JWKS) it also offers a user picker that
 * mints 15-minute dev tokens, but only to callers on this machine (loopback) and same-origin
 * pages: anyone who can mint tokens can be anyone. Against Django, paste a real token.
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
  const dev = devTokenMinter(opts);
  opts.logger.warn("DEMO_PAGE is on: /demo is served", {
    userPicker: dev ? "on, for loopback callers" : "off (paste a token)",
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
      guardLocal(c.env, c.req.raw);
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
      guardLocal(c.env, c.req.raw);
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

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** Dev tokens only for this machine, and only for pages served by this service. */
function guardLocal(env: unknown, req: Request): void {
  const server = env as { requestIP?: (r: Request) => { address: string } | null } | undefined;
  const address = server?.requestIP?.(req)?.address;
  if (!address || !LOOPBACK.test(address)) {
    throw forbidden("dev tokens are only minted for requests from this machine");
  }
  const origin = req.headers.get("origin");
  if (origin !== null && safeHost(origin) !== req.headers.get("host")) {
    throw new AppError(403, "forbidden", "dev tokens are only minted for this service's own pages");
  }
}

function safeHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}
