import { readFileSync } from "node:fs";
import { z } from "zod";
import { unauthorized } from "../errors.ts";
import type { TokenVerifier } from "./token.ts";
import type { Identity, LessonInfo } from "./types.ts";

/**
 * Identity without Django: users and lessons from a JSON file, tokens signed with JWT_SECRET.
 * It answers the same three questions the Django backend answers.
 */

const id = z.number().int().positive();

export const directorySchema = z.object({
  users: z.array(
    z.object({
      id,
      email: z.string().default(""),
      is_mentor: z.boolean(),
      first_name: z.string().default(""),
      last_name: z.string().default(""),
    }),
  ),
  lessons: z.array(
    z.object({
      id,
      course_id: id.optional(),
      teacher_id: id,
      student_ids: z.array(id).default([]),
    }),
  ),
});

export type Directory = z.infer<typeof directorySchema>;

export function readDirectoryFile(path: string): Directory {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`DIRECTORY_FILE: cannot read ${path}: ${(err as Error).message}`);
  }
  const parsed = directorySchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new Error(`DIRECTORY_FILE: ${path}: ${first?.path.join(".")}: ${first?.message}`);
  }
  return parsed.data;
}

export function createDirectoryIdentity(dir: Directory, verifier: TokenVerifier): Identity {
  const users = new Map(dir.users.map((u) => [u.id, u]));
  const lessons = new Map(dir.lessons.map((l) => [l.id, l]));
  return {
    kind: "directory",
    async authenticate(cred) {
      const token = await verifier.verify(cred.token);
      const user = users.get(token.userId);
      if (!user) throw unauthorized("the token's user is not in the directory");
      return { userId: user.id, isMentor: user.is_mentor, expiresAt: token.expiresAt };
    },
    async lesson(lessonId): Promise<LessonInfo | null> {
      const l = lessons.get(lessonId);
      return l ? { id: l.id, teacherId: l.teacher_id, courseId: l.course_id } : null;
    },
    async studentAllowed(lessonId, studentId) {
      const l = lessons.get(lessonId);
      const student = users.get(studentId);
      return Boolean(l && student && !student.is_mentor && l.student_ids.includes(studentId));
    },
    healthy: () => true,
  };
}
