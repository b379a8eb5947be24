import { createHash, randomBytes } from "node:crypto";

/**
 * Message ids are MongoDB ObjectIds made here, once, so the same id is the SQLite key, the
 * MongoDB `_id` and the resume cursor. This generator is strictly increasing within a process
 * (the timestamp never goes backwards and the counter carries into it) and, given the newest
 * stored id as `floorId`, across restarts: ordering by id is ordering by acceptance on one instance.
 */
export function createObjectIdGenerator(now: () => number = Date.now, floorId?: string) {
  const processUnique = randomBytes(5);
  // Ids must also sort after those of earlier processes (resume is `since=<last id>`). Within
  // one second their random process part may sort either way, so start past the second of the
  // newest id already stored.
  let lastSeconds = floorId ? Number.parseInt(floorId.slice(0, 8), 16) + 1 : 0;
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

/**
 * A notification's id for the platform's notification service, which reads it as an int64:
 * derived from the id of the message that opened the notification's cycle, so every retry (on
 * any instance, after any restart) sends the same number without a counter to keep. Message ids
 * are unique across instances, so collisions come only from the hash: with 53 bits, about one in
 * ten thousand after a million notifications. Kept below 2^53 so a JavaScript consumer reads it
 * exactly; never 0 (Go's zero value for a missing field).
 */
export function notificationIdFor(firstMessageId: string): number {
  const digest = createHash("sha256").update(`notification:${firstMessageId}`).digest();
  // 21 high bits from the first word, 32 from the second: 53 bits in all.
  const id = (digest.readUInt32BE(0) & 0x1fffff) * 2 ** 32 + digest.readUInt32BE(4);
  return id === 0 ? 1 : id;
}
