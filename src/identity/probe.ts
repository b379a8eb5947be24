import type { Logger } from "../log.ts";

/**
 * One look at DJANGO_BASE_URL, at start and again from /readyz while it looks wrong, so a
 * misconfiguration is named instead of surfacing as a 503 on every connect. The platform serves
 * its API under a language prefix (`/uz/api/content/chat-service/…`) and answers an unprefixed
 * path with a 302: a redirect is reported with its Location and the value to set. Start-up never
 * waits for or fails on it (Django may come up later).
 */

export const CHAT_SERVICE_PATH = "/api/content/chat-service/";
/** A path that exists on a right base URL: without a token it answers 401. */
const PROBE_PATH = `${CHAT_SERVICE_PATH}users/0/`;
const REPROBE_MS = 30_000;

export type ProbeResult = {
  ok: boolean;
  url: string;
  checked_at: string;
  status?: number;
  problem?: string;
  location?: string;
  /** The DJANGO_BASE_URL to set instead, when the answer tells. */
  suggested_base_url?: string;
};

/** Where a redirect points, as the base URL that would have answered directly. */
function suggestFrom(location: string, probeUrl: string): string | undefined {
  const target = new URL(location, probeUrl);
  const at = target.pathname.indexOf(CHAT_SERVICE_PATH);
  if (at < 0) return undefined;
  return `${target.origin}${target.pathname.slice(0, at)}`;
}

export async function probeDjango(
  baseUrl: string,
  opts: { timeoutMs: number; fetch?: typeof fetch; now?: () => number },
): Promise<ProbeResult> {
  const url = `${baseUrl.replace(/\/+$/, "")}${PROBE_PATH}`;
  const checked_at = new Date((opts.now ?? Date.now)()).toISOString();
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, {
      redirect: "manual",
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, url, checked_at, problem: `cannot reach DJANGO_BASE_URL (${why})` };
  }
  await res.body?.cancel().catch(() => {});
  const status = res.status;
  if (status >= 300 && status < 400) {
    const location = res.headers.get("location") ?? "";
    const suggested = location ? suggestFrom(location, url) : undefined;
    return {
      ok: false,
      url,
      checked_at,
      status,
      location,
      ...(suggested ? { suggested_base_url: suggested } : {}),
      problem:
        `DJANGO_BASE_URL answers ${status} to ${location || "(no Location)"}` +
        (suggested ? `: set DJANGO_BASE_URL=${suggested} (the site's language prefix)` : ""),
    };
  }
  if (status === 404) {
    return {
      ok: false,
      url,
      checked_at,
      status,
      problem: `DJANGO_BASE_URL has no chat-service API (404 at ${PROBE_PATH}): it must be the site root, with its language prefix`,
    };
  }
  if (status >= 500)
    return { ok: false, url, checked_at, status, problem: `the identity backend answers ${status}` };
  return { ok: true, url, checked_at, status };
}

/** Keeps the latest probe; a wrong answer is probed again (at most every 30 s) when asked. */
export function createDjangoProbe(
  baseUrl: string,
  opts: { timeoutMs: number; logger: Logger; now?: () => number },
) {
  const now = opts.now ?? Date.now;
  let last: ProbeResult | undefined;
  let lastAt = 0;
  let running: Promise<void> | undefined;

  const run = (): Promise<void> => {
    lastAt = now();
    running ??= probeDjango(baseUrl, opts)
      .then((r) => {
        const changed = last?.problem !== r.problem;
        last = r;
        if (!changed) return;
        if (r.ok) opts.logger.info("identity backend found at DJANGO_BASE_URL", { status: r.status });
        else opts.logger.error("DJANGO_BASE_URL looks wrong", { ...r });
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  return {
    start: run,
    /** The latest result (none yet: a probe is under way), re-probing a wrong one now and then. */
    status(): ProbeResult | undefined {
      if (last && !last.ok && now() - lastAt >= REPROBE_MS) void run();
      return last;
    },
  };
}

export type DjangoProbe = ReturnType<typeof createDjangoProbe>;
