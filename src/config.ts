import { z } from "zod";
import { envFields, SERVER_HOST, TRIAL_HOST } from "./config-fields.ts";

/**
 * The environment, as a schema. Parsed once in main.ts and passed down frozen; nothing else
 * reads process.env, so a test can build the service from a plain object.
 */

export const envSchema = z.object(envFields).superRefine((env, ctx) => {
  if (env.SHUTDOWN_DRAIN_DELAY_MS >= env.SHUTDOWN_GRACE_MS && env.SHUTDOWN_DRAIN_DELAY_MS > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["SHUTDOWN_DRAIN_DELAY_MS"],
      message: "must be shorter than SHUTDOWN_GRACE_MS, which it is part of",
    });
  }
  if (env.JWT_SECRET && env.JWT_JWKS_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_JWKS_URL"],
      message: "set JWT_SECRET or JWT_JWKS_URL, not both",
    });
  }
  if (env.NOTIFY_STREAM && !env.NOTIFY_REDIS_URL && !env.REDIS_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["NOTIFY_STREAM"],
      message: "needs NOTIFY_REDIS_URL or REDIS_URL to know which Redis holds the stream",
    });
  }
  if (env.NOTIFY_REDIS_URL && !env.NOTIFY_STREAM) {
    ctx.addIssue({
      code: "custom",
      path: ["NOTIFY_REDIS_URL"],
      message: "set NOTIFY_STREAM too, or unset it",
    });
  }
  if (env.NOTIFY_TOKEN && !env.NOTIFY_URL) {
    ctx.addIssue({ code: "custom", path: ["NOTIFY_TOKEN"], message: "set NOTIFY_URL too, or unset it" });
  }
  if (env.DJANGO_BASE_URL && env.DIRECTORY_FILE) {
    ctx.addIssue({
      code: "custom",
      path: ["DIRECTORY_FILE"],
      message: "set DJANGO_BASE_URL or DIRECTORY_FILE, not both",
    });
  }
});

type Parsed = z.infer<typeof envSchema>;

/** The parsed environment with the defaults that depend on other variables filled in. */
export type Config = Readonly<Omit<Parsed, "HOST" | "DEMO_PAGE"> & { HOST: string; DEMO_PAGE: boolean }>;

/**
 * No Django and no key: the service signs with a key it generated itself and knows only the
 * sample (or a file) directory, so it is a trial on this machine, not a deployment. Such a start
 * listens on loopback and serves the demo, so `npm start` leads straight to a chat in a browser;
 * containers set HOST themselves, and a real key or Django turns the demo back to opt-in.
 */
export function isEmbeddedDefault(env: Pick<Parsed, "DJANGO_BASE_URL" | "JWT_SECRET" | "JWT_JWKS_URL">) {
  return !env.DJANGO_BASE_URL && !env.JWT_SECRET && !env.JWT_JWKS_URL;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Empty strings mean "unset": shells and orchestrators often export `VAR=` for absent values. */
function withoutEmpty(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v.trim() !== "") out[key] = v;
  }
  return out;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0] ?? "environment");
        // Never echo the value: it may be a secret.
        return `${name}: ${i.message}`;
      }),
    );
  }
  const trial = isEmbeddedDefault(parsed.data);
  return Object.freeze({
    ...parsed.data,
    HOST: parsed.data.HOST ?? (trial ? TRIAL_HOST : SERVER_HOST),
    DEMO_PAGE: parsed.data.DEMO_PAGE ?? trial,
  });
}
