import { z } from "zod";
import { type AppError, unauthorized, unavailable } from "../domain/errors.ts";
import type { Logger } from "../log.ts";
import { SingleFlightCache } from "./cache.ts";
import { type TokenVerifier, unverifiedClaims } from "./token.ts";
import type { Credentials, Identity, LessonInfo, Principal } from "./types.ts";

/**
 * The platform's Django site as identity backend (PROTOCOL.md, "Identity backend"). Answers are
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

export interface DjangoOptions {
  baseUrl: string;
  forwardCookies: string[];
  timeoutMs: number;
  cacheTtlMs: number;
  verifier?: TokenVerifier;
  logger: Logger;
  fetch?: typeof fetch;
}

export function createDjangoIdentity(opts: DjangoOptions): Identity {
  const base = `${opts.baseUrl.replace(/\/+$/, "")}/api/content/chat-service`;
  const doFetch = opts.fetch ?? fetch;
  const users = new SingleFlightCache<Principal>(opts.cacheTtlMs);
  const lessons = new SingleFlightCache<LessonInfo | null>(opts.cacheTtlMs);
  const access = new SingleFlightCache<boolean>(opts.cacheTtlMs);
  let lastCallOk = true;

  const cookieHeader = (cred: Credentials) =>
    opts.forwardCookies
      .filter((name) => cred.cookies[name] !== undefined)
      .map((name) => `${name}=${cred.cookies[name]}`)
      .join("; ");

  /** The cache key must include the forwarded cookies: the site's answer depends on them. */
  const credKey = (cred: Credentials) => `${cred.token}|${cookieHeader(cred)}`;

  async function call(path: string, cred: Credentials): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${cred.token}`,
      Accept: "application/json",
    };
    const cookie = cookieHeader(cred);
    if (cookie) headers.Cookie = cookie;
    let res: Response;
    try {
      res = await doFetch(`${base}/${path}`, {
        headers,
        signal: AbortSignal.timeout(opts.timeoutMs),
        redirect: "manual",
      });
    } catch (err) {
      lastCallOk = false;
      opts.logger.warn("identity backend unreachable", { path: path.split("?")[0], error: err });
      throw unavailable("the identity backend is unavailable; try again shortly");
    }
    if (res.status >= 500) {
      lastCallOk = false;
      opts.logger.warn("identity backend failed", { path: path.split("?")[0], status: res.status });
      throw unavailable("the identity backend is unavailable; try again shortly");
    }
    lastCallOk = true;
    const body = await res.json().catch(() => undefined);
    return { status: res.status, body };
  }

  function refused(status: number): AppError {
    if (status === 401 || status === 403) return unauthorized("the identity backend refused the token");
    opts.logger.warn("identity backend gave an unexpected answer", { status });
    return unavailable("the identity backend gave an unexpected answer");
  }

  function requireCookies(cred: Credentials): void {
    for (const name of opts.forwardCookies) {
      if (cred.cookies[name] === undefined) {
        throw unauthorized(
          `the ${name} cookie is missing: the platform's login sets it, and it must be sent to this host`,
        );
      }
    }
  }

  return {
    kind: "django",
    async authenticate(cred) {
      // A local check first, when we hold the key: forged or expired tokens never reach Django.
      const token = opts.verifier ? await opts.verifier.verify(cred.token) : unverifiedClaims(cred.token);
      requireCookies(cred);
      return users.get(credKey(cred), async () => {
        const { status, body } = await call(`users/${token.userId}/`, cred);
        if (status === 404) throw unauthorized("the token's user does not exist");
        if (status !== 200) throw refused(status);
        const user = userSchema.safeParse(body);
        if (!user.success || user.data.id !== token.userId) throw refused(502);
        return { userId: token.userId, isMentor: user.data.is_mentor, expiresAt: token.expiresAt };
      });
    },
    async lesson(lessonId, cred) {
      return lessons.get(String(lessonId), async () => {
        const { status, body } = await call(`lesson/${lessonId}/detail/`, cred);
        if (status === 404) return null;
        if (status !== 200) throw refused(status);
        const lesson = lessonSchema.safeParse(body);
        if (!lesson.success) throw refused(502);
        return { id: lesson.data.id, teacherId: lesson.data.teacher_id, courseId: lesson.data.course_id };
      });
    },
    async studentAllowed(lessonId, studentId, cred) {
      return access.get(`${lessonId}:${studentId}`, async () => {
        const { status, body } = await call(
          `check-access/?lesson_id=${lessonId}&student_id=${studentId}`,
          cred,
        );
        if (status === 404) return false;
        if (status === 403 && accessSchema.safeParse(body).success) return false;
        if (status !== 200) throw refused(status);
        const answer = accessSchema.safeParse(body);
        if (!answer.success) throw refused(502);
        return answer.data.allowed;
      });
    },
    healthy: () => lastCallOk,
  };
}
