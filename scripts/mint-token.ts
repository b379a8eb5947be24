import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { loadConfig } from "../src/config.ts";
import { loadOrCreateDevSecret } from "../src/identity/dev-secret.ts";

/**
 * Mints a SimpleJWT-shaped access token for local development:
 *   npm run token -- --user 10 [--minutes 15]
 * Signed with JWT_SECRET, or the dev key the service keeps beside its SQLite file.
 */
const { values } = parseArgs({
  options: { user: { type: "string" }, minutes: { type: "string", default: "15" } },
});
const userId = Number(values.user);
const minutes = Number(values.minutes);
if (!Number.isSafeInteger(userId) || userId <= 0 || !(minutes > 0)) {
  process.stderr.write("usage: npm run token -- --user <id> [--minutes 15]\n");
  process.exit(2);
}
const config = loadConfig(process.env);
const secret = config.JWT_SECRET ?? loadOrCreateDevSecret(config.SQLITE_PATH);
const token = await new SignJWT({ token_type: "access", user_id: userId, jti: crypto.randomUUID() })
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setIssuedAt()
  .setExpirationTime(`${Math.round(minutes * 60)}s`)
  .sign(new TextEncoder().encode(secret));
process.stdout.write(`${token}\n`);
