/**
 * The service's checkpoint thread with every pass made slow on purpose: each `checkpoint` waits
 * CHECKPOINT_DELAY_MS (from the worker's env) before the real one runs. Tests use it to see
 * what the writer does while a pass is still copying.
 */
import "../../src/store/sqlite/checkpoint-worker.ts";

declare const self: Worker;

const delayMs = Number(process.env.CHECKPOINT_DELAY_MS ?? "150");
const real = self.onmessage;
if (!real) throw new Error("the checkpoint worker did not install its handler");
self.onmessage = (event: MessageEvent<{ type: string }>) => {
  if (event.data.type === "checkpoint") Bun.sleepSync(delayMs);
  real.call(self, event);
};
