import { ConfigError, loadConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { startService } from "./service.ts";

/** Composition root: environment → configuration → service; owns the process signals. */

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  throw err;
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
