import { SignJWT } from "jose";

/**
 * The population every workload uses: `pairs` lessons, each with one mentor and one student,
 * so conversation i is (lesson i, mentor i, student STUDENT_BASE + i). Both servers see the
 * same users and the same one-channel-per-conversation layout.
 */

export const BENCH_SECRET = "bench-secret-0123456789abcdef-not-for-production";
export const STUDENT_BASE = 100_000;

export interface Pair {
  lessonId: number;
  mentorId: number;
  studentId: number;
}

export function pairs(n: number): Pair[] {
  return Array.from({ length: n }, (_, i) => ({
    lessonId: i + 1,
    mentorId: i + 1,
    studentId: STUDENT_BASE + i + 1,
  }));
}

/** The DIRECTORY_FILE our service reads when it runs without Django. */
export function directoryFor(ps: Pair[]) {
  return {
    users: [
      ...ps.map((p) => ({ id: p.mentorId, is_mentor: true })),
      ...ps.map((p) => ({ id: p.studentId, is_mentor: false })),
    ],
    lessons: ps.map((p) => ({
      id: p.lessonId,
      course_id: 1,
      teacher_id: p.mentorId,
      student_ids: [p.studentId],
    })),
  };
}

const key = new TextEncoder().encode(BENCH_SECRET);

/** A SimpleJWT-shaped access token, as the Django site would mint it. */
export function ourToken(userId: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ token_type: "access", user_id: userId, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(key);
}

/** Centrifugo's connection token: HS256 over `client.token.hmac_secret_key`, user in `sub`. */
export function centrifugoToken(userId: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: String(userId) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(key);
}
