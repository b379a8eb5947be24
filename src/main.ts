import { startService } from "./app.ts";
import { handleArguments, startupBanner } from "./cli.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { checkHealth, healthcheckUrl } from "./healthcheck.ts";
import { createLogger } from "./log.ts";

/** Composition root: environment → configuration → service; owns the process signals. */

// Compiled or not, the program's own arguments start at index 2.
const { healthcheck } = handleArguments(process.argv.slice(2));

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
  process.stderr.write(startupBanner(config, service.port));
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
