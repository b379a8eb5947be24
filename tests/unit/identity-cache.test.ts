import { describe, expect, test } from "bun:test";
import { AppError } from "../../src/errors.ts";
import { SingleFlightCache } from "../../src/identity/cache.ts";

const isRefusal = (err: unknown) => err instanceof AppError && err.status === 401;

describe("SingleFlightCache: failures that belong to one caller", () => {
  test("a caller who joined a flight refused for someone else's token loads with its own", async () => {
    const cache = new SingleFlightCache<string>(1000);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const stale = cache.get(
      "lesson:5",
      async () => {
        await gate;
        throw new AppError(401, "unauthorized", "stale device");
      },
      isRefusal,
    );
    let ownLoads = 0;
    const fresh = cache.get(
      "lesson:5",
      async () => {
        ownLoads++;
        return "lesson 5";
      },
      isRefusal,
    );
    release();
    await expect(stale).rejects.toThrow("stale device");
    expect(await fresh).toBe("lesson 5");
    expect(ownLoads).toBe(1);
    // The joiner's answer is cached; the refusal never was.
    expect(await cache.get("lesson:5", async () => "reloaded")).toBe("lesson 5");
  });

  test("an outage is shared: joiners do not retry it", async () => {
    const cache = new SingleFlightCache<string>(1000);
    let loads = 0;
    const down = async () => {
      loads++;
      await Bun.sleep(5);
      throw new AppError(503, "unavailable", "down");
    };
    const all = await Promise.allSettled(Array.from({ length: 10 }, () => cache.get("k", down, isRefusal)));
    expect(all.every((r) => r.status === "rejected")).toBe(true);
    expect(loads).toBe(1);
  });

  test("delete forgets an entry", async () => {
    const cache = new SingleFlightCache<number>(1000);
    let n = 0;
    await cache.get("k", async () => ++n);
    cache.delete("k");
    expect(await cache.get("k", async () => ++n)).toBe(2);
  });
});
