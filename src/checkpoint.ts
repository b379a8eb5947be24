import type { CheckpointerOptions } from "./checkpointer.ts";
import type { Logger } from "./log.ts";

/**
 * Runs WAL checkpoints on a worker thread. While it runs, the main connection's
 * autocheckpoint is off; if the worker dies, autocheckpoint comes back so the WAL stays bounded.
 */
export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(opts: {
  path: string;
  logger: Logger;
  /** Turns the main connection's autocheckpoint on (pages) or off (0). */
  setAutocheckpoint: (pages: number) => void;
  fallbackPages: number;
  synchronous?: CheckpointerOptions["synchronous"];
  intervalMs?: number;
  truncateBytes?: number;
  onCheckpoint?: (result: { mode: string; busy: number; log: number; checkpointed: number }) => void;
}): Checkpointer {
  const options: CheckpointerOptions = {
    path: opts.path,
    intervalMs: opts.intervalMs ?? 500,
    truncateBytes: opts.truncateBytes ?? 256 * 1024 * 1024,
    synchronous: opts.synchronous ?? "FULL",
    restartBytes: 16 * 1024 * 1024,
    restartFrames: 2000,
  };
  // Next to main.ts on purpose: the compiled binary resolves this URL against the bundled main,
  // so the worker entry must sit in the same directory there as here. ref: false: a checkpointer
  // must never keep the process alive on its own.
  const worker = new Worker(new URL("./checkpointer.ts", import.meta.url), { ref: false, smol: true });
  let stopping = false;
  let exited = false;
  const fallBack = (why: string) => {
    if (stopping) return;
    stopping = true;
    opts.setAutocheckpoint(opts.fallbackPages);
    opts.logger.error("checkpoint worker stopped; autocheckpoint back on the main connection", { why });
  };
  const exitedPromise = new Promise<void>((resolve) => {
    worker.addEventListener("close", () => {
      exited = true;
      fallBack("exited");
      resolve();
    });
  });
  worker.addEventListener("error", (e) => {
    fallBack(e.message);
    worker.terminate();
  });
  worker.addEventListener("message", (e: MessageEvent) => {
    const msg = e.data as {
      type: string;
      message?: string;
      mode: string;
      busy: number;
      log: number;
      checkpointed: number;
    };
    if (msg.type === "checkpoint") opts.onCheckpoint?.(msg);
    else if (msg.type === "started")
      opts.logger.info("checkpoint worker started", { intervalMs: options.intervalMs });
    else if (msg.type === "error") opts.logger.warn("checkpoint failed", { error: msg.message });
  });
  opts.setAutocheckpoint(0);
  worker.postMessage({ type: "start", options });

  return {
    async stop() {
      if (exited) return;
      stopping = true;
      worker.postMessage({ type: "stop" });
      const done = await Promise.race([exitedPromise.then(() => true), Bun.sleep(2000).then(() => false)]);
      if (!done) worker.terminate();
      opts.setAutocheckpoint(opts.fallbackPages);
    },
  };
}
