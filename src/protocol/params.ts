import { z } from "zod";
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

export const messagesQuerySchema = z.object({
  user_id: idParam.optional(),
  conversation_id: objectId,
  before: objectId.optional(),
  after: objectId.optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, "expected a whole number from 1 to 200")
    .transform(Number)
    .pipe(z.number().int().min(1, "expected at least 1").max(200, "expected at most 200"))
    .default(50),
});

export const presenceQuerySchema = z.object({ user_id: idParam });

/** POST /attachments: the conversation the file is uploaded into. */
export const attachmentUploadQuerySchema = z.object({ conversation_id: objectId });

export const attachmentParamSchema = z.object({ id: objectId });
