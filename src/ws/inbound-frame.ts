import {
  type ErrorCode,
  fastMessageFrame,
  INBOUND_TYPES,
  type InboundFrame,
  inboundFrameSchema,
} from "../protocol/frames.ts";

/**
 * Reading one inbound text frame: JSON, then the frame schema. A refusal carries the error frame's
 * code and message, and the frame's own handle (`ref`) so a client learns which send to retry.
 */

export type FrameReading =
  | { ok: true; frame: InboundFrame }
  | { ok: false; code: ErrorCode; message: string; ref?: string };

/** The frame's own handle, echoed in errors so a client knows which send failed. */
function refOf(json: unknown): string | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const { client_id, message_id } = json as { client_id?: unknown; message_id?: unknown };
  const ref =
    typeof client_id === "string" ? client_id : typeof message_id === "string" ? message_id : undefined;
  return ref?.slice(0, 64);
}

const REF_IN_RAW = /"(?:client_id|message_id)"\s*:\s*"([^"\\]{1,64})"/;

/**
 * The handle of a frame refused before parsing, so a client still learns which send to retry.
 * A plain scan, linear in the frame, for the common case of unescaped ids.
 */
export function refIn(raw: string): string | undefined {
  return REF_IN_RAW.exec(raw)?.[1];
}

/** Turns zod's first complaint into one line a client developer can act on. */
function describeFrameIssue(
  issues: ReadonlyArray<{ path: PropertyKey[]; message: string; code: string }>,
): string {
  const first = issues[0];
  if (!first) return "invalid frame";
  const field = first.path.map(String).join(".");
  if (first.code === "unrecognized_keys") return `unexpected field: ${first.message}`;
  return field ? `${field}: ${first.message}` : first.message;
}

export function readFrame(raw: string): FrameReading {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, code: "bad_json", message: "frame is not valid JSON" };
  }
  // The hot path: a well-formed plain message, without zod's allocations.
  const fast = fastMessageFrame(json);
  if (fast) return { ok: true, frame: fast };
  const parsed = inboundFrameSchema.safeParse(json);
  if (parsed.success) return { ok: true, frame: parsed.data };
  const type = (json as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !INBOUND_TYPES.includes(type as never)) {
    return {
      ok: false,
      code: "unknown_type",
      message: `type must be one of: ${INBOUND_TYPES.join(", ")}`,
      ref: typeof type === "string" ? type.slice(0, 64) : undefined,
    };
  }
  return { ok: false, code: "bad_frame", message: describeFrameIssue(parsed.error.issues), ref: refOf(json) };
}
