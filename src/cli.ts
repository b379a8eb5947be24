import { z } from "zod";
import pkg from "../package.json" with { type: "json" };
import { type Config, envSchema } from "./config.ts";
import { mintingOffReason } from "./demo/guard.ts";

/**
 * The command line: `--help`, `--version`, `--healthcheck`, and the banner an interactive start
 * prints. A binary on a VM has no README beside it, so the help lists the configuration straight
 * from the schema the service parses with: a variable cannot be added without showing up here.
 */

// Set by `npm run build` (bun build --define); absent when running from source.
declare const LESSON_CHAT_COMMIT: string | undefined;

const USAGE = `usage: lesson-chat [--healthcheck | --help | --version]
  (no arguments)  start the service; configuration comes from the environment (below)
  --healthcheck   exit 0 when this host's service answers /healthz with 200, else 1
  --help, -h      print this text
  --version, -V   print the version and the commit it was built from
`;

export function commit(): string {
  if (typeof LESSON_CHAT_COMMIT === "string" && LESSON_CHAT_COMMIT) return LESSON_CHAT_COMMIT;
  try {
    // From source: ask git about the checkout this file is in (not the caller's directory).
    const r = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], {
      cwd: import.meta.dir,
      stdout: "pipe",
      stderr: "ignore",
    });
    const sha = r.exitCode === 0 ? r.stdout.toString().trim() : "";
    return sha || "unknown";
  } catch {
    return "unknown"; // no git binary, or a compiled file whose directory does not exist
  }
}

export function versionText(): string {
  return `lesson-chat ${pkg.version} (commit ${commit()})\n`;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s.def.innerType as z.ZodType;
  return s;
}

function shownDefault(schema: z.ZodType): string {
  const meta = z.globalRegistry.get(schema);
  if (typeof meta?.shownDefault === "string") return meta.shownDefault;
  if (schema instanceof z.ZodDefault) {
    const v: unknown = schema.def.defaultValue;
    return Array.isArray(v) ? v.join(",") : String(v);
  }
  return "unset";
}

/** One entry per environment variable, in schema order. */
export function configHelp(): string {
  const lines = ["configuration (environment variables; an empty value counts as unset):"];
  for (const [name, field] of Object.entries(envSchema.shape)) {
    const schema = field as z.ZodType;
    const inner = unwrap(schema);
    const choices = inner instanceof z.ZodEnum ? `; one of ${inner.options.join(", ")}` : "";
    lines.push(`  ${name.padEnd(26)} default: ${shownDefault(schema)}${choices}`);
    lines.push(`      ${schema.description ?? "(undocumented)"}`);
  }
  return `${lines.join("\n")}\n`;
}

export function helpText(): string {
  return `${USAGE}\n${configHelp()}`;
}

/**
 * Handles the arguments that end the process (help, version, mistakes) and says what is left
 * to do. Exit code 2 for a usage mistake, as for a configuration mistake.
 */
export function handleArguments(args: string[]): { healthcheck: boolean } {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(helpText());
    process.exit(0);
  }
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
    process.stdout.write(versionText());
    process.exit(0);
  }
  const healthcheck = args.length === 1 && args[0] === "--healthcheck";
  if (args.length > 0 && !healthcheck) {
    process.stderr.write(`unknown arguments: ${args.join(" ")}\n${USAGE}`);
    process.exit(2);
  }
  return { healthcheck };
}

const LOOPBACK_OR_ANY = new Set(["0.0.0.0", "::", "[::]", "127.0.0.1", "::1", "[::1]", "localhost"]);

/** What a person who just typed `npm start` needs next: where to click, or how to get a token. */
export function startupBanner(
  config: Pick<Config, "HOST" | "DEMO_PAGE" | "DEMO_MINT_PUBLIC" | "DJANGO_BASE_URL" | "JWT_JWKS_URL">,
  port: number,
): string {
  const host = LOOPBACK_OR_ANY.has(config.HOST)
    ? "localhost"
    : config.HOST.includes(":")
      ? `[${config.HOST}]`
      : config.HOST;
  const http = `http://${host}:${port}`;
  const lines = ["", `chat service on ${http}`];
  if (config.DEMO_PAGE) {
    const off = mintingOffReason(config);
    lines.push(
      `  open the demo:  ${http}/demo`,
      off
        ? `                  (user picker off: ${off})`
        : "                  one window as Maya Mentor (10) with student 15, another as Sam Student (15)",
    );
  }
  lines.push(
    "  mint a token:   npm run token -- --user 10        (mentor 10; students 15, 16 in lesson 5)",
    `  connect:        ws://${host}:${port}/ws?lesson_id=5&student_id=15&token=<token>`,
    `  history:        curl -H "Authorization: Bearer <token>" "${http}/conversations"`,
    "",
  );
  return lines.join("\n");
}
