import { z } from "zod";
import type { ChangePosition } from "../model/types.ts";
import { objectId } from "./frames.ts";

/** Query and path parameters, shared by the WebSocket upgrade and the REST routes. */

export const idParam = z
  .string()
  .regex(/^\d{1,15}$/, "expected a positive whole number")
  .transform(Number)
  .pipe(z.number().int().positive("expected a positive whole number"));

export const connectQuerySchema = z.object({
  token: z.string().min(1).optional(),
  user_id: idParam.optional(),
  lesson_id: idParam,
  student_id: idParam.optional(),
  since: objectId.optional(),
});
export type ConnectQuery = z.infer<typeof connectQuerySchema>;

export const conversationsQuerySchema = z.object({
  user_id: idParam.optional(),
  mentor_id: idParam.optional(),
  student_id: idParam.optional(),
  lesson_id: idParam.optional(),
});

export const conversationParamSchema = z.object({ id: objectId });

const limitParam = (byDefault: number) =>
  z
    .string()
    .regex(/^\d{1,4}$/, "expected a whole number from 1 to 200")
    .transform(Number)
    .pipe(z.number().int().min(1, "expected at least 1").max(200, "expected at most 200"))
    .default(byDefault);

export const messagesQuerySchema = z.object({
  user_id: idParam.optional(),
  conversation_id: objectId,
  before: objectId.optional(),
  after: objectId.optional(),
  limit: limitParam(50),
});

/**
 * Ids carry whole seconds, and instances' clocks differ a little: catching up from a message
 * starts this much before it. Change frames carry the message's whole current state, so one the
 * client already applied is harmless.
 */
export const CATCH_UP_MARGIN_MS = 2_000;

/** Where catch-up starts for a client whose last seen message is `messageId`. */
export function positionAfterMessage(messageId: string): ChangePosition {
  const seconds = Number.parseInt(messageId.slice(0, 8), 16);
  return { at: Math.max(0, seconds * 1000 - CATCH_UP_MARGIN_MS), messageId: "" };
}

/** The change-feed cursor as clients see it: `<ms>-<message id>`, opaque to them. */
export const encodeChangeCursor = (p: ChangePosition): string => `${p.at}-${p.messageId}`;

const CHANGE_CURSOR_RE = /^(\d{1,15})-([0-9a-f]{24})?$/;

/** `after`: a cursor from an earlier answer, or a message id (as `since` on the WebSocket). */
export const changesQuerySchema = z.object({
  user_id: idParam.optional(),
  conversation_id: objectId,
  after: z
    .string()
    .regex(
      new RegExp(`${CHANGE_CURSOR_RE.source}|^[0-9a-f]{24}$`),
      "expected a cursor from an earlier answer or a message id",
    )
    .transform((v): ChangePosition => {
      const m = CHANGE_CURSOR_RE.exec(v);
      return m ? { at: Number(m[1]), messageId: m[2] ?? "" } : positionAfterMessage(v);
    })
    .optional(),
  limit: limitParam(100),
});

export const presenceQuerySchema = z.object({ user_id: idParam });

/** POST /attachments: the conversation the file is uploaded into. */
export const attachmentUploadQuerySchema = z.object({ conversation_id: objectId });

export const attachmentParamSchema = z.object({ id: objectId });
