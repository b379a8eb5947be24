import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config.ts";

describe("loadConfig", () => {
  test("defaults match the platform's contract (docs/configuration.md)", () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(8080);
    expect(c.SQLITE_PATH).toBe("./data/chat.db");
    expect(c.MONGO_DB).toBe("chat");
    expect(c.DJANGO_FORWARD_COOKIES).toEqual(["device_id"]);
    expect(c.MAX_MESSAGE_CHARS).toBe(4000);
    expect(c.ALLOWED_ORIGINS).toBeUndefined();
    expect(c.MONGO_URI).toBeUndefined();
  });

  test("copies: one durable copy per ack by default, two when asked", () => {
    const c = loadConfig({});
    expect([c.ACK_COPIES, c.ACK_COPY_TIMEOUT_MS, c.COPY_FLUSH_DELAY_MS]).toEqual([1, 1000, 15_000]);
    expect(loadConfig({ ACK_COPIES: "2" }).ACK_COPIES).toBe(2);
  });

  test("empty strings count as unset", () => {
    expect(loadConfig({ PORT: "", MONGO_URI: " " }).PORT).toBe(8080);
  });

  test("parses lists and numbers", () => {
    const c = loadConfig({ ALLOWED_ORIGINS: "https://a.test, https://b.test,", PORT: "9000" });
    expect(c.ALLOWED_ORIGINS).toEqual(["https://a.test", "https://b.test"]);
    expect(c.PORT).toBe(9000);
  });

  test.each([
    [{ PORT: "eighty" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ MONGO_URI: "http://nope" }, "MONGO_URI"],
    [{ DJANGO_BASE_URL: "not a url" }, "DJANGO_BASE_URL"],
    [{ JWT_SECRET: "short" }, "JWT_SECRET"],
    [{ MAX_MESSAGE_CHARS: "0" }, "MAX_MESSAGE_CHARS"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ REDIS_URL: "localhost:6379" }, "REDIS_URL"],
    [{ ACK_COPIES: "3" }, "ACK_COPIES"],
    [{ ACK_COPY_TIMEOUT_MS: "10" }, "ACK_COPY_TIMEOUT_MS"],
    [{ COPY_FLUSH_DELAY_MS: "soon" }, "COPY_FLUSH_DELAY_MS"],
    [{ JWT_SECRET: "0123456789abcdef0123", JWT_JWKS_URL: "https://x.test/jwks" }, "JWT_JWKS_URL"],
    [{ DJANGO_BASE_URL: "http://d.test", DIRECTORY_FILE: "/x.json" }, "DIRECTORY_FILE"],
  ])("%p is refused, naming %s", (env, name) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
  });

  test("every wrong variable is reported at once, without echoing values", () => {
    try {
      loadConfig({ PORT: "x", JWT_SECRET: "tiny-secret" });
      throw new Error("expected a ConfigError");
    } catch (e) {
      const msg = (e as ConfigError).message;
      expect(msg).toContain("PORT:");
      expect(msg).toContain("JWT_SECRET:");
      expect(msg).not.toContain("tiny-secret");
    }
  });
});
