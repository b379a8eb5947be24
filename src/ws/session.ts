import type { ServerWebSocket } from "bun";
import { otherParty } from "../domain/access.ts";
import { conversationTopic, participantTopic } from "../domain/bus.ts";
import type { Chat } from "../domain/chat.ts";
import type { Presence } from "../domain/presence.ts";
import type { KeyedBuckets, TokenBucket } from "../domain/rate.ts";
import { AppError } from "../errors.ts";
import type { Credentials, Identity, Principal } from "../identity/types.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Conversation } from "../model/types.ts";
import {
  type ErrorCode,
  encode,
  fastMessageFrame,
  INBOUND_TYPES,
  inboundFrameSchema,
  type OutboundFrame,
} from "../protocol/frames.ts";
import { toWireMessage } from "../protocol/wire.ts";
import type { ChatStore } from "../store/sqlite/index.ts";

/** What a socket carries from its upgrade to its close. */
export interface SessionData {
  connId: string;
  principal: Principal;
  /** Only the cookies: a later `auth` frame brings its own token, and a kept one is dead weight. */
  cookies: Credentials["cookies"];
  conversation: Conversation;
  since?: string;
  /** While a resume is being written: the last message id sent. Live traffic waits until it ends. */
  resumeAfter?: string;
  bucket: TokenBucket;
  openedAt: number;
}

export type ChatSocket = ServerWebSocket<SessionData>;

export interface SessionDeps {
  chat: Chat;
  store: ChatStore;
  identity: Identity;
  presence: Presence;
  /** Releases the bus subscription the upgrade took for this socket's conversation. */
  unwatch: (conversationId: string) => void;
  userBuckets: KeyedBuckets;
  metrics: Metrics;
  logger: Logger;
  now: () => number;
  /**
   * Publishes on this server's own topics. Acks go through a topic of their socket's own: a
   * publish is queued and written with the socket's other frames at the end of the loop turn,
   * where a send() from outside a socket callback costs a write of its own.
   */
  publishLocal: (topic: string, frame: string) => void;
  /** Sockets that are open, for shutdown to close them with 1001. */
  sockets: Set<ChatSocket>;
}

const RESUME_PAGE = 200;

const ackTopic = (ws: ChatSocket) => `a:${ws.data.connId}`;

function send(ws: ChatSocket, frame: OutboundFrame): void {
  ws.send(encode(frame));
}

function sendError(ws: ChatSocket, deps: SessionDeps, code: ErrorCode, message: string, ref?: string): void {
  deps.metrics.framesRejected.inc({ code });
  send(ws, { type: "error", code, message, ...(ref !== undefined ? { ref } : {}) });
}

/** The frame's own handle, echoed in errors so a client knows which send failed. */
function refOf(json: unknown): string | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const { client_id, message_id } = json as { client_id?: unknown; message_id?: unknown };
  const ref =
    typeof client_id === "string" ? client_id : typeof message_id === "string" ? message_id : undefined;
  return ref?.slice(0, 64);
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

export function createSessionHandlers(deps: SessionDeps) {
  const { chat, store, presence, metrics, logger } = deps;

  /**
   * Writes the backlog after `ws.data.resumeAfter` page by page, pausing when the socket pushes
   * back and going on from `drain`, so a long absence cannot overflow the send buffer (which
   * closes the socket). The live topic is joined in the same turn as the read that finds
   * nothing more: commits and publishes run on this thread, so nothing falls between the two
   * and nothing is sent twice.
   */
  function pumpResume(ws: ChatSocket): void {
    const conversationId = ws.data.conversation.id;
    for (;;) {
      const after = ws.data.resumeAfter;
      if (after === undefined) return;
      const page = store.page(conversationId, { after, limit: RESUME_PAGE });
      for (const m of page) {
        ws.data.resumeAfter = m.id;
        // -1: queued, but the socket is pushing back; `drain` resumes from here.
        if (ws.send(encode({ type: "message", ...toWireMessage(m) })) === -1) return;
      }
      if (page.length < RESUME_PAGE) {
        ws.data.resumeAfter = undefined;
        ws.subscribe(conversationTopic(conversationId));
        return;
      }
    }
  }

  async function handle(ws: ChatSocket, raw: string): Promise<void> {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return sendError(ws, deps, "bad_json", "frame is not valid JSON");
    }
    if (!ws.data.bucket.take()) {
      return sendError(
        ws,
        deps,
        "rate_limited",
        "too many frames on this connection; slow down",
        refOf(json),
      );
    }
    const fast = fastMessageFrame(json);
    const parsed = fast ? { success: true as const, data: fast } : inboundFrameSchema.safeParse(json);
    if (!parsed.success) {
      const type = (json as { type?: unknown } | null)?.type;
      if (typeof type !== "string" || !INBOUND_TYPES.includes(type as never)) {
        return sendError(
          ws,
          deps,
          "unknown_type",
          `type must be one of: ${INBOUND_TYPES.join(", ")}`,
          typeof type === "string" ? type.slice(0, 64) : undefined,
        );
      }
      return sendError(ws, deps, "bad_frame", describeFrameIssue(parsed.error.issues), refOf(json));
    }
    const frame = parsed.data;
    const { conversation, principal } = ws.data;
    switch (frame.type) {
      case "message": {
        if (!deps.userBuckets.take(String(principal.userId)).ok) {
          return sendError(
            ws,
            deps,
            "rate_limited",
            "too many messages from this user; slow down",
            frame.client_id,
          );
        }
        const started = performance.now();
        try {
          const { message, duplicate } = await chat.send(
            conversation,
            principal.userId,
            frame.text ?? "",
            frame.client_id,
            frame.attachments,
          );
          deps.publishLocal(
            ackTopic(ws),
            encode({
              type: "ack",
              id: message.id,
              created_at: new Date(message.createdAt).toISOString(),
              ...(message.clientId !== null ? { client_id: message.clientId } : {}),
              ...(duplicate ? { duplicate: true } : {}),
            }),
          );
          metrics.ackLatency.observe((performance.now() - started) / 1000);
        } catch (err) {
          reportFailure(ws, err, frame.client_id);
        }
        return;
      }
      case "typing":
        chat.typing(conversation, principal.userId, frame.is_typing);
        return;
      case "viewed":
        try {
          await chat.markViewed(conversation, principal.userId, frame.message_id);
        } catch (err) {
          reportFailure(ws, err, frame.message_id);
        }
        return;
      case "auth":
        return reauthenticate(ws, frame.token);
      case "ping":
        return send(ws, { type: "pong" });
    }
  }

  function reportFailure(ws: ChatSocket, err: unknown, ref: string | undefined): void {
    if (err instanceof AppError) {
      sendError(ws, deps, err.code as ErrorCode, err.message, ref);
      return;
    }
    logger.error("frame handling failed", { connId: ws.data.connId, error: err });
    sendError(ws, deps, "internal", "the server could not store this; retry with the same client_id", ref);
  }

  /** A fresh token keeps a long chat authorised; it must name the same user. */
  async function reauthenticate(ws: ChatSocket, token: string): Promise<void> {
    try {
      const principal = await deps.identity.authenticate({ token, cookies: ws.data.cookies });
      if (principal.userId !== ws.data.principal.userId) {
        sendError(ws, deps, "forbidden", "the new token names another user");
        ws.close(1008, "token user changed");
        return;
      }
      ws.data.principal = principal;
      send(ws, {
        type: "auth_ok",
        ...(principal.expiresAt !== undefined
          ? { expires_at: new Date(principal.expiresAt * 1000).toISOString() }
          : {}),
      });
    } catch (err) {
      reportFailure(ws, err, undefined);
    }
  }

  return {
    open(ws: ChatSocket) {
      const { conversation, principal, since } = ws.data;
      deps.sockets.add(ws);
      metrics.connectionsOpened.inc();
      // Typing and presence for this participant are not part of the ordered history.
      ws.subscribe(participantTopic(conversation.id, principal.userId));
      ws.subscribe(ackTopic(ws));
      send(ws, {
        type: "ready",
        conversation_id: conversation.id,
        user_id: principal.userId,
        lesson_id: conversation.lessonId,
        mentor_id: conversation.mentorId,
        student_id: conversation.studentId,
      });
      const other = otherParty(conversation, principal.userId);
      presence.connected(principal.userId, deps.now());
      chat.announcePresence(conversation, principal.userId, true);
      if (since === undefined) {
        ws.subscribe(conversationTopic(conversation.id));
      } else {
        ws.data.resumeAfter = since;
        pumpResume(ws);
      }
      // The shared presence view may live in Redis: the snapshot follows the backlog.
      presence.status(other).then(
        ({ online, lastSeen }) => {
          if (!deps.sockets.has(ws)) return;
          send(ws, {
            type: "presence",
            user_id: other,
            online,
            ...(lastSeen !== null ? { last_seen: new Date(lastSeen).toISOString() } : {}),
          });
        },
        (err) => logger.warn("presence snapshot failed", { error: err }),
      );
      logger.debug("connection open", {
        connId: ws.data.connId,
        userId: principal.userId,
        conversation: conversation.id,
      });
    },

    drain(ws: ChatSocket) {
      pumpResume(ws);
    },

    message(ws: ChatSocket, raw: string | Buffer) {
      if (typeof raw !== "string") {
        sendError(ws, deps, "bad_frame", "frames must be JSON text, not binary");
        return;
      }
      handle(ws, raw).catch((err) => reportFailure(ws, err, undefined));
    },

    close(ws: ChatSocket, code: number) {
      const { conversation, principal } = ws.data;
      deps.sockets.delete(ws);
      deps.unwatch(conversation.id);
      const at = deps.now();
      presence.disconnected(principal.userId, at).then(
        ({ wentOffline }) => {
          if (wentOffline) chat.announcePresence(conversation, principal.userId, false, at);
        },
        (err) => logger.warn("presence update failed", { error: err }),
      );
      logger.debug("connection closed", { connId: ws.data.connId, code });
    },
  };
}
