import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config.ts";

describe("notification settings", () => {
  test("are off by default, with a one-minute delay and the platform's chat link", () => {
    const c = loadConfig({});
    expect(c.NOTIFY_STREAM).toBeUndefined();
    expect(c.NOTIFY_URL).toBeUndefined();
    expect(c.NOTIFY_DELAY_S).toBe(60);
    expect(c.NOTIFY_INCLUDE_TEXT).toBe(true);
    expect(c.NOTIFY_ACTION_URL).toBe("/lessons/{lesson_id}/chat?student_id={student_id}");
  });

  test("take fractional seconds and both sinks", () => {
    const c = loadConfig({
      NOTIFY_DELAY_S: "0.25",
      NOTIFY_STREAM: "notifications_stream",
      REDIS_URL: "redis://r:6379",
      NOTIFY_URL: "http://notification:8081/publish",
      NOTIFY_TOKEN: "t",
      NOTIFY_INCLUDE_TEXT: "false",
    });
    expect(c.NOTIFY_DELAY_S).toBe(0.25);
    expect(c.NOTIFY_INCLUDE_TEXT).toBe(false);
  });

  test.each([
    [{ NOTIFY_DELAY_S: "soon" }, "NOTIFY_DELAY_S"],
    [{ NOTIFY_DELAY_S: "0" }, "NOTIFY_DELAY_S"],
    [{ NOTIFY_DELAY_S: "-1" }, "NOTIFY_DELAY_S"],
    [{ NOTIFY_STREAM: "notifications_stream" }, "NOTIFY_STREAM"],
    [{ NOTIFY_STREAM: "has space", REDIS_URL: "redis://r" }, "NOTIFY_STREAM"],
    [{ NOTIFY_REDIS_URL: "redis://r" }, "NOTIFY_REDIS_URL"],
    [{ NOTIFY_URL: "notification:8081/publish" }, "NOTIFY_URL"],
    [{ NOTIFY_TOKEN: "t" }, "NOTIFY_TOKEN"],
    [{ NOTIFY_INCLUDE_TEXT: "maybe" }, "NOTIFY_INCLUDE_TEXT"],
    [{ NOTIFY_ACTION_URL: "/lessons/{lesson}/chat" }, "NOTIFY_ACTION_URL"],
    [{ NOTIFY_TIMEOUT_MS: "5" }, "NOTIFY_TIMEOUT_MS"],
  ])("%p is refused, naming %s", (env, name) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
  });

  test("the token is never echoed", () => {
    try {
      loadConfig({ NOTIFY_TOKEN: "very-secret-value" });
      throw new Error("expected a ConfigError");
    } catch (e) {
      expect((e as ConfigError).message).not.toContain("very-secret-value");
    }
  });
});
