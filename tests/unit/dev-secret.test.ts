import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sameSecret } from "../../src/auth/credentials.ts";
import { devSecretPath, loadOrCreateDevSecret } from "../../src/identity/dev-secret.ts";
import { startTestService, tempDir } from "../helpers/service.ts";

/** Whoever controls the dev signing key mints tokens for anyone: only a private file is trusted. */

let dir: ReturnType<typeof tempDir> | undefined;
afterEach(() => {
  dir?.remove();
  dir = undefined;
});

function keyFile(mode: number): { sqlite: string; key: string } {
  dir = tempDir("chat-devkey-");
  const sqlite = join(dir.path, "chat.db");
  const key = devSecretPath(sqlite);
  writeFileSync(key, "planted-key-0123456789\n");
  chmodSync(key, mode);
  return { sqlite, key };
}

describe("dev-jwt-secret", () => {
  test("a new key file is created 0600 and read back", () => {
    dir = tempDir("chat-devkey-");
    const sqlite = join(dir.path, "chat.db");
    const secret = loadOrCreateDevSecret(sqlite);
    expect(statSync(devSecretPath(sqlite)).mode & 0o777).toBe(0o600);
    expect(loadOrCreateDevSecret(sqlite)).toBe(secret);
  });

  for (const mode of [0o644, 0o640, 0o606, 0o660]) {
    test(`a key file with mode ${mode.toString(8)} is refused, naming the fix`, () => {
      const { sqlite } = keyFile(mode);
      expect(() => loadOrCreateDevSecret(sqlite)).toThrow(/chmod 600/);
    });
  }

  test("a key file owned by another user is refused", () => {
    // Needs root to give the file away; the CI and this machine run the suite as root.
    expect(process.getuid?.()).toBe(0);
    const { sqlite, key } = keyFile(0o600);
    chownSync(key, 65534, 65534);
    expect(() => loadOrCreateDevSecret(sqlite)).toThrow(/not by this service's user/);
  });

  test("the service does not start on a key file others can read", async () => {
    const { sqlite } = keyFile(0o644);
    const d = dir!.path;
    await expect(
      startTestService({ dir: d, env: { JWT_SECRET: "", DIRECTORY_FILE: "", SQLITE_PATH: sqlite } }),
    ).rejects.toThrow(/group or others/);
  });
});

describe("sameSecret (METRICS_TOKEN)", () => {
  test("equal only when equal; any length, missing never matches", () => {
    expect(sameSecret("scrape-secret-123", "scrape-secret-123")).toBe(true);
    expect(sameSecret("scrape-secret-124", "scrape-secret-123")).toBe(false);
    expect(sameSecret("scrape", "scrape-secret-123")).toBe(false);
    expect(sameSecret("scrape-secret-123-and-more", "scrape-secret-123")).toBe(false);
    expect(sameSecret(undefined, "scrape-secret-123")).toBe(false);
    expect(sameSecret("", "scrape-secret-123")).toBe(false);
  });
});
