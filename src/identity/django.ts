import { z } from "zod";
import { AppError, forbidden, unauthorized, unavailable } from "../errors.ts";
import type { Logger } from "../log.ts";
import { SingleFlightCache } from "./cache.ts";
import { type TokenVerifier, unverifiedClaims } from "./token.ts";
import type { Credentials, Identity, LessonInfo, Principal } from "./types.ts";

/**
 * The platform's Django site as identity backend (docs/protocol.md, "Identity and access"). Answers are
 * cached briefly per token, per lesson and per lesson+student; nothing the backend says is
 * passed on to our callers beyond the facts we need.
 */

const userSchema = z.object({ id: z.number().int(), is_mentor: z.boolean() });
const lessonSchema = z.object({
  id: z.number().int(),
  teacher_id: z.number().int(),
  course_id: z.number().int().optional(),
});
const accessSchema = z.object({ allowed: z.boolean() });

/** Users whose current device we remember; beyond this the oldest are forgotten (and re-proven). */
const MAX_DEVICES = 100_000;

export interface DjangoOptions {
  baseUrl: string;
  forwardCookies: string[];
  timeoutMs: number;
  cacheTtlMs: number;
  verifier?: TokenVerifier;
  logger: Logger;
  fetch?: typeof fetch;
}

/** A refusal that is about the caller's credentials, not about the lesson asked for. */
const isCallerRefusal = (err: unknown) =>
  err instanceof AppError && (err.status === 401 || err.status === 403);

export function createDjangoIdentity(opts: DjangoOptions): Identity {
  const base = `${opts.baseUrl.replace(/\/+$/, "")}/api/content/chat-service`;
  const doFetch = opts.fetch ?? fetch;
  const users = new SingleFlightCache<Principal>(opts.cacheTtlMs);
  const lessons = new SingleFlightCache<LessonInfo | null>(opts.cacheTtlMs);
  const access = new SingleFlightCache<boolean>(opts.cacheTtlMs);
  /** userId → the forwarded cookies that last proved that user. */
  const devices = new Map<number, string>();
  let lastCallOk = true;

  const cookieNames = opts.forwardCookies.join(", ");
  const staleCredentials = () =>
    unauthorized(
      `the platform refused this token or ${cookieNames} cookie: it may have expired or been revoked, ` +
        "or a newer login on another device replaced this one; log in again",
    );

  const cookieHeader = (cred: Credentials) =>
    opts.forwardCookies
      .filter((name) => cred.cookies[name] !== undefined)
      .map((name) => `${name}=${cred.cookies[name]}`)
      .join("; ");

  async function call(path: string, cred: Credentials): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${cred.token}`,
      Accept: "application/json",
    };
    const cookie = cookieHeader(cred);
    if (cookie) headers.Cookie = cookie;
    const what = path.split("?")[0]?.replace(/\d+/g, ":id");
    try {
      // One deadline for the answer and its body: a backend that stalls mid-body must not hang us.
      const signal = AbortSignal.timeout(opts.timeoutMs);
      const res = await doFetch(`${base}/${path}`, { headers, signal, redirect: "manual" });
      if (res.status >= 500) {
        await res.body?.cancel().catch(() => {});
        lastCallOk = false;
        opts.logger.warn("identity backend failed", { path: what, status: res.status });
        throw unavailable("the identity backend is unavailable; try again shortly");
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => {});
        lastCallOk = false;
        // The platform redirects an unprefixed path to its language prefix: name it (identity/probe.ts).
        opts.logger.warn("identity backend redirected: DJANGO_BASE_URL probably lacks the language prefix", {
          path: what,
          status: res.status,
          location: res.headers.get("location"),
        });
        throw unavailable("the identity backend is misconfigured; try again later");
      }
      const body =
        res.status === 200 || res.status === 403 ? await res.json().catch(() => undefined) : undefined;
      if (body === undefined) await res.body?.cancel().catch(() => {});
      lastCallOk = true;
      return { status: res.status, body };
    } catch (err) {
      if (err instanceof AppError) throw err;
      lastCallOk = false;
      opts.logger.warn("identity backend unreachable", { path: what, error: err });
      throw unavailable("the identity backend is unavailable; try again shortly");
    }
  }

  /** Our own words for a refusal: the backend's `detail` text never reaches a client. */
  function refused(status: number, what: string): AppError {
    if (status === 401) return staleCredentials();
    if (status === 403) return forbidden(`the platform refused access to ${what}`);
    opts.logger.warn("identity backend gave an unexpected answer", { status, what });
    return unavailable("the identity backend gave an unexpected answer; try again shortly");
  }

  function requireCookies(cred: Credentials): void {
    for (const name of opts.forwardCookies) {
      if (cred.cookies[name] === undefined) {
        throw unauthorized(
          `the ${name} cookie is missing: the platform's login sets it, and the browser must send it to this host`,
        );
      }
    }
  }

  function rememberDevice(userId: number, cookies: string): void {
    devices.delete(userId);
    if (devices.size >= MAX_DEVICES) {
      const oldest = devices.keys().next().value;
      if (oldest !== undefined) devices.delete(oldest);
    }
    devices.set(userId, cookies);
  }

  return {
    kind: "django",
    async authenticate(cred) {
      // A local check first, when we hold the key: forged or expired tokens never reach Django.
      const token = opts.verifier ? await opts.verifier.verify(cred.token) : unverifiedClaims(cred.token);
      requireCookies(cred);
      const cookies = cookieHeader(cred);
      // The site's answer depends on the cookies too, so they are part of the key.
      const key = `${cred.token}|${cookies}`;
      const prove = async (): Promise<Principal> => {
        const { status, body } = await call(`users/${token.userId}/`, cred);
        if (status === 404) throw unauthorized("the token's user does not exist on the platform");
        if (status !== 200) throw refused(status, "the chat service for this account");
        const user = userSchema.safeParse(body);
        if (!user.success || user.data.id !== token.userId) throw refused(502, "users");
        rememberDevice(token.userId, cookies);
        return { userId: token.userId, isMentor: user.data.is_mentor, expiresAt: token.expiresAt };
      };
      const principal = await users.get(key, prove);
      // The site allows one device per user: once other cookies proved this user, an answer
      // cached for these is stale, so ask again (the site then refuses the old device).
      if (devices.get(principal.userId) === cookies) return principal;
      users.delete(key);
      return users.get(key, prove);
    },
    async lesson(lessonId, cred) {
      return lessons.get(
        String(lessonId),
        async () => {
          const { status, body } = await call(`lesson/${lessonId}/detail/`, cred);
          if (status === 404) return null;
          if (status !== 200) throw refused(status, `lesson ${lessonId}`);
          const lesson = lessonSchema.safeParse(body);
          if (!lesson.success) throw refused(502, "lesson");
          return { id: lesson.data.id, teacherId: lesson.data.teacher_id, courseId: lesson.data.course_id };
        },
        isCallerRefusal,
      );
    },
    async studentAllowed(lessonId, studentId, cred) {
      return access.get(
        `${lessonId}:${studentId}`,
        async () => {
          const { status, body } = await call(
            `check-access/?lesson_id=${lessonId}&student_id=${studentId}`,
            cred,
          );
          if (status === 404) return false;
          // The site's "no" is a 403 with `allowed: false`; a 403 without it is about the caller.
          if (status === 403 && accessSchema.safeParse(body).success) return false;
          if (status !== 200) throw refused(status, `lesson ${lessonId}`);
          const answer = accessSchema.safeParse(body);
          if (!answer.success) throw refused(502, "check-access");
          return answer.data.allowed;
        },
        isCallerRefusal,
      );
    },
    healthy: () => lastCallOk,
  };
}
