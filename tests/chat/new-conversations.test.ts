import { Database } from "bun:sqlite";
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { metricValue } from "../../bench/lib/metrics-text.ts";
import { startTestService, type TestService, tempDir } from "../helpers/service.ts";

/**
 * A new conversation is stored through the group commit: a burst of first connects (a new term,
 * a class joining at once) shares commits instead of each stopping the loop for a sync, and each
 * socket hears `ready` only once its conversation is committed.
 */

const STUDENTS = Array.from({ length: 30 }, (_, i) => 200 + i);
const dir = tempDir();
let svc: TestService;

beforeAll(async () => {
  const directory = join(dir.path, "class.json");
  writeFileSync(
    directory,
    JSON.stringify({
      users: [{ id: 100, is_mentor: true }, ...STUDENTS.map((id) => ({ id, is_mentor: false }))],
      lessons: [{ id: 9, course_id: 1, teacher_id: 100, student_ids: STUDENTS }],
    }),
  );
  // Syncs at least 50 ms apart, so a burst of connects meets a commit still gathering.
  svc = await startTestService({
    dir: dir.path,
    env: { DIRECTORY_FILE: directory, SQLITE_SYNC_INTERVAL_MS: "50", UPGRADES_PER_MIN_PER_ADDRESS: "0" },
  });
});
afterAll(async () => {
  await svc?.stop();
  dir.remove();
});

test("thirty first connects at once: each conversation is stored before its ready, in shared commits", async () => {
  const metric = async (series: string) => metricValue(await (await svc.get("/metrics")).text(), series);
  const commitsBefore = metric("chat_sqlite_commit_batch_size_count");
  const jobsBefore = metric("chat_sqlite_commit_batch_size_sum");
  const [c0, j0] = [await commitsBefore, await jobsBefore];

  const db = new Database(join(dir.path, "chat.db"), { readonly: true });
  const stored = db.query<{ id: string }, [string]>("SELECT id FROM conversations WHERE id = ?");
  const sockets = await Promise.all(STUDENTS.map((id) => svc.connect(id, { lesson_id: 9 })));
  const ready = await Promise.all(
    sockets.map(async (s) => {
      const r = await s.next("ready");
      // Read right when this socket heard of its conversation: the row is committed by then.
      return { id: String(r.conversation_id), row: stored.get(String(r.conversation_id)) };
    }),
  );
  expect(new Set(ready.map((r) => r.id)).size).toBe(STUDENTS.length);
  expect(ready.filter((r) => r.row === null)).toEqual([]);
  db.close();

  const commits = (await metric("chat_sqlite_commit_batch_size_count")) - c0;
  const jobs = (await metric("chat_sqlite_commit_batch_size_sum")) - j0;
  // Every creation was a job of the group commit, and they shared commits.
  expect(jobs).toBeGreaterThanOrEqual(STUDENTS.length);
  expect(commits).toBeGreaterThan(0);
  expect(commits).toBeLessThanOrEqual(STUDENTS.length / 2);
  for (const s of sockets) s.close();
});
