import { createDirectoryIdentity, directorySchema } from "../../src/identity/directory.ts";
import { createTokenVerifier } from "../../src/identity/token.ts";
import type { Identity } from "../../src/identity/types.ts";
import { TEST_DIRECTORY } from "./service.ts";
import { TEST_SECRET } from "./tokens.ts";

/** The test directory, with enrollments a test can end while sockets are open (an ended course). */
export function revocableIdentity(): { identity: Identity; end(lessonId: number, studentId: number): void } {
  const verifier = createTokenVerifier({ secret: TEST_SECRET, clockToleranceS: 0 })!;
  const inner = createDirectoryIdentity(directorySchema.parse(TEST_DIRECTORY), verifier);
  const ended = new Set<string>();
  const identity: Identity = {
    kind: inner.kind,
    authenticate: (cred) => inner.authenticate(cred),
    lesson: (id, cred) => inner.lesson(id, cred),
    studentAllowed: async (lessonId, studentId, cred) =>
      !ended.has(`${lessonId}:${studentId}`) && (await inner.studentAllowed(lessonId, studentId, cred)),
    healthy: () => inner.healthy(),
  };
  return { identity, end: (lessonId, studentId) => void ended.add(`${lessonId}:${studentId}`) };
}
