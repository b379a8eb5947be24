import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ChildService } from "../../tests/helpers/service.ts";
import type { TestSocket } from "../../tests/helpers/ws-client.ts";

/**
 * The population of the cross-instance benches: one mentor teaching one lesson to `n` students,
 * so conversation i is (LESSON, MENTOR, students[i]); the mentor's sockets go to one instance
 * and the students' to another.
 */

export const MENTOR = 1000;
export const LESSON = 100;

export const studentsOf = (n: number) => Array.from({ length: n }, (_, i) => 2000 + i);

/** The DIRECTORY_FILE for `students`, written into `dir`; returns its path. */
export function oneMentorDirectory(dir: string, students: number[]): string {
  const file = join(dir, "bench-directory.json");
  writeFileSync(
    file,
    JSON.stringify({
      users: [{ id: MENTOR, is_mentor: true }, ...students.map((id) => ({ id, is_mentor: false }))],
      lessons: [{ id: LESSON, course_id: 1, teacher_id: MENTOR, student_ids: students }],
    }),
  );
  return file;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Each student connected on `receiverSide`, then the mentor's socket for them on `senderSide`. */
export async function connectPairs(
  senderSide: ChildService,
  receiverSide: ChildService,
  students: number[],
): Promise<Array<{ mentor: TestSocket; student: TestSocket }>> {
  const pairs: Array<{ mentor: TestSocket; student: TestSocket }> = [];
  for (const s of students) {
    const student = await receiverSide.connect(s, { lesson_id: LESSON });
    await student.next("ready");
    const mentor = await senderSide.connect(MENTOR, { lesson_id: LESSON, student_id: s });
    await mentor.next("ready");
    pairs.push({ mentor, student });
  }
  return pairs;
}
