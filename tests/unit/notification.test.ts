import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  buildNotification,
  decideFire,
  endsCycle,
  excerpt,
  expandActionUrl,
} from "../../src/domain/notification.ts";
import { createObjectIdGenerator, notificationIdFor } from "../../src/ids.ts";

const conversation = { id: "c1", lessonId: 5, mentorId: 10, studentId: 15 };
const input = (over: Partial<Parameters<typeof buildNotification>[0]> = {}) => ({
  id: 42,
  conversation,
  senderId: 15,
  recipientId: 10,
  first: { id: "65a1b2c3d4e5f60718293a4b", text: "  Is   question 3\n due tomorrow?  " },
  unreadCount: 1,
  at: Date.parse("2026-12-01T23:00:00.000Z"),
  ...over,
});
const ACTION = "/lessons/{lesson_id}/chat?student_id={student_id}";

describe("notification ids", () => {
  test("are integers in [1, 2^53), the same for the same first message", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9a-f]{24}$/), (messageId) => {
        const id = notificationIdFor(messageId);
        expect(Number.isSafeInteger(id)).toBe(true);
        expect(id).toBeGreaterThan(0);
        expect(id).toBeLessThan(2 ** 53);
        expect(notificationIdFor(messageId)).toBe(id);
      }),
    );
  });

  test("differ across 200,000 message ids from two instances", () => {
    const a = createObjectIdGenerator();
    const b = createObjectIdGenerator();
    const seen = new Set<number>();
    for (let i = 0; i < 100_000; i++) {
      seen.add(notificationIdFor(a()));
      seen.add(notificationIdFor(b()));
    }
    expect(seen.size).toBe(200_000);
  });
});

describe("payload", () => {
  test("has the platform's fields and types, with the opening text", () => {
    const n = buildNotification(input(), { includeText: true, actionUrl: ACTION });
    expect(n).toEqual({
      id: 42,
      user_id: 10,
      type: "chat_message",
      title: "New message from your student",
      message: "Is question 3 due tomorrow?",
      metadata: {
        conversation_id: "c1",
        lesson_id: 5,
        sender_id: 15,
        message_id: "65a1b2c3d4e5f60718293a4b",
        unread_count: 1,
      },
      action_url: "/lessons/5/chat?student_id=15",
      created_at: "2026-12-01T23:00:00.000Z",
    });
  });

  test("counts several messages and quotes nothing when text is off", () => {
    const n = buildNotification(input({ senderId: 10, recipientId: 15, unreadCount: 10 }), {
      includeText: false,
      actionUrl: ACTION,
    });
    expect(n.title).toBe("10 new messages from your mentor");
    expect(n.message).not.toContain("question");
    expect(n.metadata.unread_count).toBe(10);
  });

  test("excerpts cut on code points and say so", () => {
    expect(excerpt("😀".repeat(200), 10)).toBe(`${"😀".repeat(9)}…`);
    expect(excerpt("short")).toBe("short");
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 400 }), (s) => {
        expect(Array.from(excerpt(s, 50)).length).toBeLessThanOrEqual(50);
      }),
    );
  });

  test("action urls fill known placeholders, encoded, and leave others alone", () => {
    expect(
      expandActionUrl("/c/{conversation_id}?m={mentor_id}&x={nope}", { ...conversation, id: "a b" }),
    ).toBe("/c/a%20b?m=10&x={nope}");
  });
});

describe("cycle rules", () => {
  const cycle = { notificationId: 7, firstMessageId: "0000000000000000000000b0" };
  test("a read mark ends the cycle when it covers the first message", () => {
    expect(endsCycle(cycle, "0000000000000000000000b0")).toBe(true);
    expect(endsCycle(cycle, "0000000000000000000000c0")).toBe(true);
    expect(endsCycle(cycle, "0000000000000000000000a0")).toBe(false);
  });
  test("a due entry is sent only while its cycle is open and its first message unread", () => {
    expect(decideFire(7, cycle, false)).toBe("send");
    expect(decideFire(7, cycle, true)).toBe("read");
    expect(decideFire(7, null, false)).toBe("cancelled");
    expect(decideFire(8, cycle, false)).toBe("cancelled");
  });
});
