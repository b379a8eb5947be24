import { describe, expect, test } from "bun:test";
import { envSchema } from "../../src/config.ts";

/** The README's configuration must stay in step with the schema the service enforces. */
describe("README", () => {
  const readme = Bun.file(`${import.meta.dir}/../../README.md`).text();
  test.each(Object.keys(envSchema.shape))("documents %s", async (name) => {
    expect(await readme).toContain(`\`${name}\``);
  });
});
