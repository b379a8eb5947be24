import { expect, test } from "bun:test";
import { join } from "node:path";
import { runProgram } from "../helpers/run.ts";

/**
 * Without MONGO_URI the MongoDB driver stays unloaded: its BSON serializer alone keeps a 17 MiB
 * buffer, and a heap that much larger made every idle connection ~1.2 KB dearer
 * (docs/performance-log.md, "The MongoDB driver at start").
 */
test("the embedded default starts without loading the MongoDB driver", async () => {
  const { code, out } = await runProgram(
    [process.execPath, join(import.meta.dir, "../helpers/driver-modules.ts")],
    {
      cwd: join(import.meta.dir, "../.."),
      env: {},
    },
  );
  expect(code).toBe(0);
  const counts = JSON.parse(out.trim().split("\n").pop()!) as { atStart: number; afterGridFs: number };
  expect(counts.atStart).toBe(0);
  expect(counts.afterGridFs).toBeGreaterThan(10);
});
