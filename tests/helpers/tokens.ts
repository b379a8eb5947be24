import { SignJWT } from "jose";

/** The secret every test service verifies with; tests mint tokens the way SimpleJWT does. */
export const TEST_SECRET = "test-secret-0123456789abcdef-not-for-production";

export async function mintToken(
  userId: number,
  opts: {
    secret?: string;
    expiresInS?: number;
    tokenType?: string;
    alg?: "HS256" | "HS512";
    extra?: Record<string, unknown>;
  } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    token_type: opts.tokenType ?? "access",
    user_id: userId,
    jti: crypto.randomUUID(),
    ...opts.extra,
  })
    .setProtectedHeader({ alg: opts.alg ?? "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.expiresInS ?? 900))
    .sign(new TextEncoder().encode(opts.secret ?? TEST_SECRET));
}
