import type { Config } from "./config.ts";

/**
 * `lesson-chat --healthcheck`: asks the running service on this host for /healthz and turns
 * the answer into an exit code. Container images without curl use it for HEALTHCHECK.
 */

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);

export function healthcheckUrl(config: Pick<Config, "HOST" | "PORT">): string {
  const host = WILDCARD_HOSTS.has(config.HOST) ? "127.0.0.1" : config.HOST;
  const hostPart = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `http://${hostPart}:${config.PORT}/healthz`;
}

/** Resolves to a one-line verdict; never throws, so the caller only maps `ok` to 0 or 1. */
export async function checkHealth(url: string, timeoutMs = 3000): Promise<{ ok: boolean; detail: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return { ok: res.status === 200, detail: `${url} answered ${res.status}` };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, detail: `${url} did not answer: ${reason}` };
  }
}
