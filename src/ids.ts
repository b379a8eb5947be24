import { createHash, randomBytes } from "node:crypto";

/**
 * Message ids are MongoDB ObjectIds made here, once, so the same id is the SQLite key, the
 * MongoDB `_id` and the resume cursor. This generator is strictly increasing within a process
 * (the timestamp never goes backwards and the counter carries into it), and across restarts on
 * one host (see below), so ordering by id is ordering by acceptance on one instance.
 */
export function createObjectIdGenerator(now: () => number = Date.now) {
  const processUnique = randomBytes(5);
  // Start one second past the start time: the previous process on this host stopped no later
  // than now, so every id made here sorts after its ids. Without this, a restart within the
  // same second drew a random processUnique that could sort below the old one, and a client
  // resuming with since=<last id> skipped the new messages.
  let lastSeconds = Math.floor(now() / 1000) + 1;
  let counter = randomBytes(3).readUIntBE(0, 3);
  return (): string => {
    let seconds = Math.floor(now() / 1000);
    if (seconds < lastSeconds) seconds = lastSeconds;
    counter = (counter + 1) & 0xffffff;
    if (seconds === lastSeconds && counter === 0) {
      // The counter wrapped inside one second: borrow the next second so ids keep increasing.
      seconds = lastSeconds + 1;
    }
    lastSeconds = seconds;
    const buf = Buffer.allocUnsafe(12);
    buf.writeUInt32BE(seconds >>> 0, 0);
    processUnique.copy(buf, 4);
    buf.writeUIntBE(counter, 9, 3);
    return buf.toString("hex");
  };
}

export const OBJECT_ID_RE = /^[0-9a-f]{24}$/;

/**
 * A conversation's id is derived from its (lesson, mentor, student) triple, so two instances,
 * or one instance during a MongoDB outage, that create the same conversation agree on its id
 * without asking anyone.
 */
export function conversationIdFor(lessonId: number, mentorId: number, studentId: number): string {
  return createHash("sha256")
    .update(`conversation:${lessonId}:${mentorId}:${studentId}`)
    .digest("hex")
    .slice(0, 24);
}
