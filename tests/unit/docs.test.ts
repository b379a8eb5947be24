import { describe, expect, test } from "bun:test";
import { envSchema } from "../../src/config.ts";

/**
 * The configuration reference (docs/configuration.md) must stay in step with the schema the
 * service enforces: every variable has a row in one of its tables.
 */
describe("docs/configuration.md", () => {
  const reference = Bun.file(`${import.meta.dir}/../../docs/configuration.md`).text();
  test.each(Object.keys(envSchema.shape))("documents %s", async (name) => {
    const rows = (await reference).split("\n").filter((line) => line.startsWith("|"));
    expect(rows.some((row) => row.includes(`\`${name}\``))).toBe(true);
  });
});
