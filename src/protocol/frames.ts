import { z } from "zod";
import { OBJECT_ID_RE } from "../ids.ts";

/**
 * The WebSocket wire format. Inbound frames are zod schemas (the single source of their
 * types); outbound frames are plain types built by the `encode*` helpers so each is
 * serialised once per publish.
 */

export const objectId = z.string().regex(OBJECT_ID_RE, "expected a 24-character hex id");

export const clientId = z
  .string()
  .min(1, "client_id must not be empty")
  .max(64, "client_id is at most 64 characters")
  .regex(/^[\w.:-]+$/, "client_id may hold letters, digits and _ . : - only");

export const inboundFrameSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("message"),
    // Length is checked after trimming, in characters, against MAX_MESSAGE_CHARS. Optional when
    // the message carries attachments; a message with neither is refused as `empty`.
    text: z.string({ message: "text must be a string" }).optional(),
    client_id: clientId.optional(),
    // Ids from POST /attachments, uploaded by the sender into this conversation.
    attachments: z.array(objectId).max(10, "at most 10 attachments per message").optional(),
  }),
  z.strictObject({
    type: z.literal("typing"),
    is_typing: z.boolean({ message: "is_typing must be true or false" }),
  }),
  z.strictObject({ type: z.literal("viewed"), message_id: objectId }),
  z.strictObject({ type: z.literal("auth"), token: z.string().min(1).max(8192) }),
  // Browsers cannot send protocol-level pings; this lets a page check its connection.
  z.strictObject({ type: z.literal("ping") }),
]);

export type InboundFrame = z.infer<typeof inboundFrameSchema>;
export type MessageFrame = Extract<InboundFrame, { type: "message" }>;

const CLIENT_ID_RE = /^[\w.:-]{1,64}$/;

/**
 * The hot path: a well-formed `message` frame, accepted without zod's allocations. It accepts
 * exactly what the schema accepts; anything else returns undefined and goes through zod, which
 * words the error.
 */
export function fastMessageFrame(json: unknown): MessageFrame | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const f = json as { type?: unknown; text?: unknown; client_id?: unknown };
  if (f.type !== "message" || typeof f.text !== "string") return undefined;
  let keys = 0;
  for (const k in f) {
    if (k !== "type" && k !== "text" && k !== "client_id") return undefined;
    keys++;
  }
  if (f.client_id === undefined) return keys === 2 ? (f as MessageFrame) : undefined;
  return typeof f.client_id === "string" && CLIENT_ID_RE.test(f.client_id) ? (f as MessageFrame) : undefined;
}
export const INBOUND_TYPES = inboundFrameSchema.options.map((o) => o.shape.type.value);

/** What a message carries of each attachment (the bytes are at GET /attachments/{id}). */
export const attachmentRefSchema = z.object({
  id: objectId,
  name: z.string().min(1).max(255),
  size: z.number().int().nonnegative(),
  mime: z.string().min(1).max(100),
});

export const messageSchema = z.object({
  id: objectId,
  conversation_id: objectId,
  sender_id: z.number().int(),
  text: z.string(),
  created_at: z.string(),
  client_id: z.string().optional(),
  viewed_by: z.number().int().optional(),
  viewed_at: z.string().optional(),
  attachments: z.array(attachmentRefSchema).max(10).optional(),
});
export type Message = z.infer<typeof messageSchema>;

export type ErrorCode =
  | "bad_json"
  | "bad_frame"
  | "unknown_type"
  | "too_long"
  | "empty"
  | "not_found"
  | "conflict"
  | "forbidden"
  | "unauthorized"
  | "rate_limited"
  | "unavailable"
  | "internal";

export type OutboundFrame =
  | ({ type: "message" } & Message)
  | { type: "ack"; id: string; created_at: string; client_id?: string; duplicate?: boolean }
  | { type: "typing"; conversation_id: string; sender_id: number; is_typing: boolean }
  | { type: "viewed"; conversation_id: string; message_id: string; viewer_id: number; viewed_at: string }
  | { type: "presence"; user_id: number; online: boolean; last_seen?: string }
  | {
      type: "ready";
      conversation_id: string;
      user_id: number;
      lesson_id: number;
      mentor_id: number;
      student_id: number;
    }
  | { type: "auth_ok"; expires_at?: string }
  | { type: "pong" }
  | { type: "error"; code: ErrorCode; message: string; ref?: string };

export const encode = (frame: OutboundFrame): string => JSON.stringify(frame);

export function messageFrame(m: Message): OutboundFrame {
  return { type: "message", ...m };
}
