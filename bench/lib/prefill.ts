import { Database } from "bun:sqlite";
import { conversationIdFor, createObjectIdGenerator } from "../../src/ids.ts";
import { openStore } from "../../src/store/sqlite/index.ts";
import type { Pair } from "./fixtures.ts";

/**
 * Fills a SQLite file for the history workload: `hot` messages in the first pair's
 * conversation and the rest of `total` spread over the other conversations, in one
 * transaction with synchronous=OFF (a fixture, not a durability test). Uses the service's own
 * schema by opening the store once.
 */
export function prefill(path: string, ps: Pair[], total: number, hot: number): { conversationId: string } {
  // The service's own schema, made by opening the store once; then plain inserts.
  openStore({ path, synchronous: "OFF" }).close();
  const db = new Database(path, { strict: true });
  db.run("PRAGMA synchronous = OFF");
  let clock = Date.UTC(2024, 0, 1);
  const newId = createObjectIdGenerator(() => clock);
  const insertConversation = db.prepare(
    "INSERT OR IGNORE INTO conversations (id, lesson_id, mentor_id, student_id, created_at) VALUES (?, ?, ?, ?, ?)",
  );
  const insertMessage = db.prepare(
    "INSERT INTO messages (conversation_id, id, sender_id, text, created_at, client_id) VALUES (?, ?, ?, ?, ?, ?)",
  );
  const ids = ps.map((p) => conversationIdFor(p.lessonId, p.mentorId, p.studentId));
  const others = Math.max(1, ps.length - 1);
  const perOther = Math.floor((total - hot) / others);
  db.transaction(() => {
    ps.forEach((p, i) => {
      insertConversation.run(ids[i]!, p.lessonId, p.mentorId, p.studentId, clock);
      const count = i === 0 ? hot : i === ps.length - 1 ? total - hot - perOther * (others - 1) : perOther;
      for (let k = 0; k < count; k++) {
        clock += 7;
        const sender = k % 2 === 0 ? p.mentorId : p.studentId;
        insertMessage.run(
          ids[i]!,
          newId(),
          sender,
          `history message ${k} of lesson ${p.lessonId}`,
          clock,
          `h${k}`,
        );
      }
    });
  })();
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close(false);
  return { conversationId: ids[0]! };
}
