import { startService } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { checkHealth, healthcheckUrl } from "./healthcheck.ts";
import { createLogger } from "./log.ts";

/** Composition root: environment → configuration → service; owns the process signals. */

const USAGE = `usage: lesson-chat [--healthcheck]
  (no arguments)  start the service; configuration comes from the environment (see README)
  --healthcheck   exit 0 when this host's service answers /healthz with 200, else 1
`;

// Compiled or not, the program's own arguments start at index 2.
const args = process.argv.slice(2);
const healthcheck = args.length === 1 && args[0] === "--healthcheck";
if (args.includes("--help") || args.includes("-h")) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (args.length > 0 && !healthcheck) {
  process.stderr.write(`unknown arguments: ${args.join(" ")}\n${USAGE}`);
  process.exit(2);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    // Docker reserves a health check's exit code 2; any failure there is "unhealthy".
    process.exit(healthcheck ? 1 : 2);
  }
  throw err;
}

if (healthcheck) {
  const { ok, detail } = await checkHealth(healthcheckUrl(config));
  (ok ? process.stdout : process.stderr).write(`${detail}\n`);
  process.exit(ok ? 0 : 1);
}

const logger = createLogger({ level: config.LOG_LEVEL });
let service: Awaited<ReturnType<typeof startService>>;
try {
  service = await startService(config, logger);
} catch (err) {
  logger.error("cannot start", { error: err });
  process.exit(1);
}

if (process.stdout.isTTY || process.env.npm_lifecycle_event === "start") {
  const base = `ws://localhost:${service.port}/ws`;
  process.stderr.write(
    [
      "",
      `chat service on http://localhost:${service.port}`,
      "  mint a token:   npm run token -- --user 10        (mentor 10; students 15, 16 in lesson 5)",
      `  connect:        ${base}?lesson_id=5&student_id=15&token=<token>`,
      `  history:        curl -H "Authorization: Bearer <token>" "http://localhost:${service.port}/conversations"`,
      "",
    ].join("\n"),
  );
}

let signals = 0;
const stop = (signal: string) => {
  if (++signals > 1) {
    logger.warn("second signal: exiting now", { signal });
    process.exit(1);
  }
  const grace = setTimeout(() => {
    logger.error("shutdown grace time exceeded", { ms: config.SHUTDOWN_GRACE_MS });
    process.exit(1);
  }, config.SHUTDOWN_GRACE_MS);
  service.shutdown(signal).then(
    () => {
      clearTimeout(grace);
      process.exit(0);
    },
    (err) => {
      logger.error("shutdown failed", { error: err });
      process.exit(1);
    },
  );
};
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
