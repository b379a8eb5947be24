import { badRequest, forbidden, notFound } from "../errors.ts";
import type { Credentials, Identity, Principal } from "../identity/types.ts";
import type { Parties } from "../model/types.ts";

export interface ConnectRequest {
  lessonId: number;
  /** Required for a mentor; a student may omit it or must name themself. */
  studentId?: number;
  /** The original API's `user_id`; when present it must agree with the token. */
  claimedUserId?: number;
}

/** A `user_id` parameter is never trusted: it may only repeat what the token says. */
export function checkClaimedUser(principal: Principal, claimedUserId: number | undefined): void {
  if (claimedUserId !== undefined && claimedUserId !== principal.userId) {
    throw forbidden("user_id does not match the token's user");
  }
}

/**
 * Who may open which conversation (docs/protocol.md, "Identity and access"): a mentor any enrolled
 * student of a lesson they teach; a student only their own conversation, when enrolled.
 */
export async function resolveParties(
  identity: Identity,
  principal: Principal,
  req: ConnectRequest,
  cred: Credentials,
): Promise<Parties> {
  checkClaimedUser(principal, req.claimedUserId);
  const lesson = await identity.lesson(req.lessonId, cred);
  if (!lesson) throw notFound(`lesson ${req.lessonId} does not exist`);

  if (principal.isMentor) {
    if (lesson.teacherId !== principal.userId) throw forbidden("you do not teach this lesson");
    if (req.studentId === undefined) throw badRequest("student_id is required when a mentor connects");
    if (!(await identity.studentAllowed(req.lessonId, req.studentId, cred))) {
      throw forbidden(`student ${req.studentId} is not enrolled in this lesson`);
    }
    return { lessonId: req.lessonId, mentorId: principal.userId, studentId: req.studentId };
  }

  if (req.studentId !== undefined && req.studentId !== principal.userId) {
    throw forbidden("a student may only open their own conversation");
  }
  if (!(await identity.studentAllowed(req.lessonId, principal.userId, cred))) {
    throw forbidden("you are not enrolled in this lesson");
  }
  return { lessonId: req.lessonId, mentorId: lesson.teacherId, studentId: principal.userId };
}

export const otherParty = (p: { mentorId: number; studentId: number }, userId: number): number =>
  userId === p.mentorId ? p.studentId : p.mentorId;

export const isParticipant = (p: { mentorId: number; studentId: number }, userId: number): boolean =>
  userId === p.mentorId || userId === p.studentId;
