import { z } from "zod";
import { messageSchema, objectId } from "../protocol/frames.ts";
import {
  attachmentParamSchema,
  attachmentUploadQuerySchema,
  connectQuerySchema,
  conversationParamSchema,
  conversationsQuerySchema,
  idParam,
  messagesQuerySchema,
  presenceQuerySchema,
} from "../protocol/params.ts";

/**
 * The OpenAPI 3.1 description of the REST API, served at /openapi.json. Parameters come from
 * the same zod schemas the routes validate with, so they cannot drift; response shapes are
 * schemas here, and tests check real responses against them.
 */

export const errorResponseSchema = z.strictObject({
  error: z.strictObject({ code: z.string(), message: z.string() }),
});

export const conversationResponseSchema = z.strictObject({
  id: objectId,
  lesson_id: z.number().int(),
  mentor_id: z.number().int(),
  student_id: z.number().int(),
  created_at: z.iso.datetime(),
  last_message: messageSchema.strict().nullable(),
  unread_count: z.number().int().min(0),
});

export const presenceResponseSchema = z.strictObject({
  online: z.boolean(),
  last_seen: z.iso.datetime().optional(),
});

export const attachmentResponseSchema = z.strictObject({
  id: objectId,
  name: z.string(),
  size: z.number().int().nonnegative(),
  mime: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const readinessResponseSchema = z.strictObject({
  ready: z.boolean(),
  checks: z.record(z.string(), z.looseObject({ ok: z.boolean() })),
});

/** The original API's `user_id`: accepted for compatibility, refused (403) unless it is the caller. */
export const legacyUserQuerySchema = z.object({ user_id: idParam.optional() });

const PARAM_HELP: Record<string, string> = {
  user_id: "Optional, for clients of the original API: must equal the token's user, else 403.",
  mentor_id: "Only conversations with this mentor.",
  student_id: "Only conversations with this student.",
  lesson_id: "Only conversations of this lesson.",
  conversation_id: "A conversation the caller takes part in.",
  before: "Cursor: messages older than this message id.",
  after: "Cursor: messages newer than this message id.",
  limit: "Page size, 1..200, default 50.",
  id: "Conversation id.",
  token: "Access token (prefer the Authorization header or the Sec-WebSocket-Protocol bearer).",
  since: "Resume: first every message after this id, then live traffic.",
};

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: "input" | "output" = "output"): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, target: "draft-2020-12" });
  return rest;
}

/** One OpenAPI parameter per key of a zod object, typed as the raw string the URL carries. */
function parameters(schema: z.ZodObject, where: "query" | "path") {
  const js = jsonSchema(schema, "input") as { properties: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(js.properties).map(([name, s]) => ({
    name,
    in: where,
    required: where === "path" || (js.required ?? []).includes(name),
    ...(PARAM_HELP[name] ? { description: PARAM_HELP[name] } : {}),
    schema: s,
  }));
}

const json = (schema: JsonSchema | { $ref: string }, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [String(s), json(ref("Error"), ERROR_HELP[s] ?? "error")]));
const ERROR_HELP: Record<number, string> = {
  400: "A parameter is invalid; the message names it.",
  401: "Missing, expired or invalid bearer token.",
  403: "Not allowed (for example a `user_id` that is not the caller).",
  404: "No such resource for this caller.",
  429: "Rate limited; see Retry-After.",
  503: "Identity backend unavailable.",
};
const authed = { security: [{ bearer: [] }] };

function build() {
  return {
    openapi: "3.1.0",
    info: {
      title: "lesson-chat",
      version: "1",
      description:
        "Mentor/student lesson chat. Every REST call carries `Authorization: Bearer <jwt>` and sees only the caller's own data. Real-time traffic goes over the WebSocket at /ws (frames are described in the README).",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      schemas: {
        Error: jsonSchema(errorResponseSchema),
        Message: jsonSchema(messageSchema),
        Attachment: jsonSchema(attachmentResponseSchema),
        Conversation: jsonSchema(conversationResponseSchema),
        Presence: jsonSchema(presenceResponseSchema),
        Readiness: jsonSchema(readinessResponseSchema),
      },
    },
    paths: {
      "/conversations": {
        get: {
          summary: "The caller's conversations, newest activity first",
          ...authed,
          parameters: parameters(conversationsQuerySchema, "query"),
          responses: {
            200: json({ type: "array", items: ref("Conversation") }, "Conversations"),
            ...errors(400, 401, 403, 429, 503),
          },
        },
      },
      "/conversations/{id}": {
        get: {
          summary: "One conversation the caller takes part in",
          ...authed,
          parameters: [
            ...parameters(conversationParamSchema, "path"),
            ...parameters(legacyUserQuerySchema, "query"),
          ],
          responses: {
            200: json(ref("Conversation"), "The conversation"),
            ...errors(400, 401, 403, 404, 429, 503),
          },
        },
      },
      "/messages": {
        get: {
          summary: "Messages of a conversation in time order (latest page without a cursor)",
          ...authed,
          parameters: parameters(messagesQuerySchema, "query"),
          responses: {
            200: json({ type: "array", items: ref("Message") }, "Messages, oldest first"),
            ...errors(400, 401, 403, 404, 429, 503),
          },
        },
      },
      "/presence": {
        get: {
          summary: "Whether a user the caller shares a conversation with is online",
          ...authed,
          parameters: parameters(presenceQuerySchema, "query"),
          responses: { 200: json(ref("Presence"), "Presence"), ...errors(400, 401, 403, 429, 503) },
        },
      },
      "/attachments": {
        post: {
          summary:
            "Upload a file into a conversation: the raw body (X-Filename: URL-encoded name) or multipart/form-data field `file`",
          ...authed,
          parameters: [
            ...parameters(attachmentUploadQuerySchema, "query"),
            {
              name: "X-Filename",
              in: "header",
              required: false,
              description: "The original file name, URL-encoded (raw-body uploads).",
              schema: { type: "string" },
            },
          ],
          requestBody: {
            required: true,
            content: {
              "application/octet-stream": {
                schema: { type: "string", contentMediaType: "application/octet-stream" },
              },
              "multipart/form-data": {
                schema: {
                  type: "object",
                  properties: { file: { type: "string", contentMediaType: "application/octet-stream" } },
                  required: ["file"],
                },
              },
            },
          },
          responses: {
            201: json(ref("Attachment"), "Stored (fsync'd); the type is the sniffed one"),
            ...errors(400, 401, 404, 429),
            413: json(ref("Error"), "Larger than ATTACHMENT_MAX_MB."),
            415: json(ref("Error"), "The sniffed type is not allowed; the message names it."),
          },
        },
      },
      "/attachments/{id}": {
        get: {
          summary:
            "An attachment's bytes: sniffed type, nosniff, strict CSP, inline only for raster images; ETag and Range",
          ...authed,
          parameters: parameters(attachmentParamSchema, "path").map((p) => ({
            ...p,
            description: "Attachment id.",
          })),
          responses: {
            200: {
              description: "The file",
              content: { "application/octet-stream": { schema: { type: "string" } } },
            },
            206: { description: "The requested byte range" },
            304: { description: "Not modified (If-None-Match)" },
            416: { description: "Range not satisfiable" },
            ...errors(400, 401, 404, 429),
            503: json(ref("Error"), "Uploaded on another instance and not yet in GridFS; see Retry-After."),
          },
        },
      },
      "/ws": {
        get: {
          summary: "WebSocket upgrade (see the README for frames)",
          parameters: parameters(connectQuerySchema, "query"),
          responses: { 101: { description: "Switching protocols" }, ...errors(400, 401, 403, 404, 429, 503) },
        },
      },
      "/healthz": {
        get: {
          summary: "Liveness",
          responses: { 200: json(jsonSchema(z.strictObject({ ok: z.literal(true) })), "Alive") },
        },
      },
      "/readyz": {
        get: {
          summary: "Readiness: SQLite, identity, bus, outbox backlog; 503 while shutting down",
          responses: { 200: json(ref("Readiness"), "Ready"), 503: json(ref("Readiness"), "Not ready") },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus text exposition (bearer METRICS_TOKEN when set)",
          responses: {
            200: { description: "Metrics", content: { "text/plain": { schema: { type: "string" } } } },
            ...errors(401),
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          responses: { 200: json({ type: "object" }, "OpenAPI 3.1 document") },
        },
      },
    },
  };
}

let cached: ReturnType<typeof build> | undefined;
export function openApiDocument() {
  cached ??= build();
  return cached;
}
