import type { ServerWebSocket } from "bun";
import type { FailedAuthGuard } from "../auth/failed-auth.ts";
import { otherParty, resolveParties } from "../domain/access.ts";
import { conversationTopic, participantTopic } from "../domain/bus.ts";
import type { Chat } from "../domain/chat.ts";
import type { ChangeResult, Edits } from "../domain/edits.ts";
import type { Presence, PresenceStatus } from "../domain/presence.ts";
import type { PresenceAnnouncer } from "../domain/presence-announce.ts";
import { changeKey, messageKey, type PublishFence } from "../domain/publish-fence.ts";
import type { KeyedBuckets, SharedRate } from "../domain/rate.ts";
import { AppError } from "../errors.ts";
import type { Credentials, Identity, Principal } from "../identity/types.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { ChangePosition, Conversation } from "../model/types.ts";
import {
  type DeleteFrame,
  type EditFrame,
  type ErrorCode,
  encode,
  type OutboundFrame,
} from "../protocol/frames.ts";
import { positionAfterMessage } from "../protocol/params.ts";
import { ackOf, toWireChange, toWireMessage } from "../protocol/wire.ts";
import type { ChatStore } from "../store/sqlite/index.ts";
import { ackTopic, joinAckTopic } from "./ack-topic.ts";
import { createExpiryTimers, TOKEN_EXPIRED_CLOSE } from "./expiry.ts";
import { readFrame, refIn } from "./inbound-frame.ts";

/** What a socket carries from its upgrade to its close. */
export interface SessionData {
  /** A number, not a string: every idle socket keeps it. */
  connId: number;
  /** The client's address: failed re-authentications spend its failed-login budget. */
  ip: string;
  principal: Principal;
  /** Only the cookies: a later `auth` frame brings its own token, and a kept one is dead weight. */
  cookies: Credentials["cookies"];
  conversation: Conversation;
  since?: string;
  /** While a resume is being written: the last message id sent. Live traffic waits until it ends. */
  resumeAfter?: string;
  /** Then, while catch-up on edits and deletes is being written: the last change sent. */
  changesAfter?: ChangePosition;
  resuming?: boolean;
  /**
   * Frames for this socket alone that came up while the backlog was being written: sent after
   * it. A send past the buffer limit closes the socket, and the backlog fills the buffer.
   */
  afterResume?: string[];
  /** The frame budget's level (SharedRate): two numbers here rather than an object per socket. */
  tokens: number;
  tokensAt: number;
  openedAt: number;
  /** `auth` frames refused so far on this socket; a few close it. */
  failedAuths?: number;
  /** The `auth` frame being checked: the next waits for it, so every refusal counts before another call. */
  authTurn?: Promise<void>;
  /** The second its newest token expires in, tolerance included (expiry.ts). */
  deadlineS?: number;
  /** Its ack topic, once joined (with its first message, edit or delete). */
  ackTopic?: string;
}

export type ChatSocket = ServerWebSocket<SessionData>;

export interface SessionDeps {
  chat: Chat;
  edits: Edits;
  store: ChatStore;
  /** What is committed but not yet published: a resume leaves it to the topic. */
  fence: PublishFence;
  identity: Identity;
  /** The per-address failed-login budget that REST and upgrades spend too. */
  authFailures: FailedAuthGuard;
  presence: Presence;
  /** Presence in and out: a close is held a while, so a reconnect is no transition (domain/presence-announce.ts). */
  announcer: PresenceAnnouncer;
  /** Releases the bus subscription the upgrade took for this socket's conversation. */
  unwatch: (conversationId: string) => void;
  userBuckets: KeyedBuckets<number>;
  /** RATE_MESSAGES_PER_S / RATE_MESSAGES_BURST: every socket's frame budget. */
  frameRate: SharedRate;
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
  /** JWT_CLOCK_TOLERANCE_S: how long past `exp` a socket may stay open. */
  clockToleranceS: number;
}

const RESUME_PAGE = 200;
/** Refused `auth` frames after which a socket is closed: a client with a good token needs one. */
export const MAX_FAILED_AUTH_FRAMES = 3;

function send(ws: ChatSocket, frame: OutboundFrame): void {
  if (!ws.data.resuming) ws.send(encode(frame));
  else if (ws.data.afterResume) ws.data.afterResume.push(encode(frame));
  else ws.data.afterResume = [encode(frame)];
}

function sendError(ws: ChatSocket, deps: SessionDeps, code: ErrorCode, message: string, ref?: string): void {
  deps.metrics.framesRejected.inc({ code });
  send(ws, { type: "error", code, message, ...(ref !== undefined ? { ref } : {}) });
}

/** A socket is not a way around the failed-login budget: a few refusals (401, 429) close it. */
function countFailedAuth(ws: ChatSocket, err: unknown): void {
  if (!(err instanceof AppError) || (err.status !== 401 && err.status !== 429)) return;
  ws.data.failedAuths = (ws.data.failedAuths ?? 0) + 1;
  if (ws.data.failedAuths >= MAX_FAILED_AUTH_FRAMES) ws.close(1008, "too many failed re-authentications");
}

export function createSessionHandlers(deps: SessionDeps) {
  const { chat, store, presence, metrics, logger } = deps;
  const expiry = createExpiryTimers<ChatSocket>({
    toleranceS: deps.clockToleranceS,
    now: deps.now,
    onExpire: (ws) => {
      sendError(ws, deps, "token_expired", "the token expired: fetch a new one and reconnect with since=");
      ws.close(TOKEN_EXPIRED_CLOSE, "token expired");
    },
  });

  /**
   * Writes the backlog after `ws.data.resumeAfter` page by page, then one frame per message
   * edited or deleted since (`ws.data.changesAfter`, older messages too), pausing when the
   * socket pushes back and going on from `drain`, so a long absence cannot overflow the send
   * buffer (which closes the socket). The live topic is joined in the same turn as the read
   * that finds nothing more: commits and publishes run on this thread, so nothing falls
   * between the two and nothing is sent twice.
   */
  function pumpResume(ws: ChatSocket): void {
    if (!ws.data.resuming) return;
    const conversationId = ws.data.conversation.id;
    while (ws.data.resumeAfter !== undefined) {
      const page = store.page(conversationId, { after: ws.data.resumeAfter, limit: RESUME_PAGE });
      for (const m of page) {
        ws.data.resumeAfter = m.id;
        if (!deps.fence.shows(conversationId, messageKey(m))) continue;
        // -1: queued, but the socket is pushing back; `drain` resumes from here.
        if (ws.send(encode({ type: "message", ...toWireMessage(m) })) === -1) return;
      }
      if (page.length < RESUME_PAGE) ws.data.resumeAfter = undefined;
    }
    while (ws.data.changesAfter !== undefined) {
      const entries = store.changesAfter(conversationId, ws.data.changesAfter, RESUME_PAGE);
      for (const e of entries) {
        ws.data.changesAfter = e.position;
        if (!deps.fence.shows(conversationId, changeKey(e))) continue;
        if (ws.send(encode(toWireChange(e.change))) === -1) return;
      }
      if (entries.length < RESUME_PAGE) ws.data.changesAfter = undefined;
    }
    ws.data.resuming = false;
    ws.subscribe(conversationTopic(conversationId));
    for (const frame of ws.data.afterResume?.splice(0) ?? []) ws.send(frame);
  }

  /** An edit or a delete: acked with the caller's client_id once durable (or a duplicate). */
  async function handleChange(ws: ChatSocket, frame: EditFrame | DeleteFrame): Promise<void> {
    const { conversation, principal } = ws.data;
    const ref = frame.client_id ?? frame.message_id;
    if (!deps.userBuckets.take(principal.userId).ok) {
      return sendError(ws, deps, "rate_limited", "too many changes from this user; slow down", ref);
    }
    joinAckTopic(ws);
    let result: ChangeResult;
    try {
      result =
        frame.type === "edit"
          ? await deps.edits.edit(conversation, principal.userId, frame.message_id, frame.text)
          : await deps.edits.remove(conversation, principal.userId, frame.message_id);
    } catch (err) {
      return reportFailure(ws, err, ref);
    }
    const { message, duplicate } = result;
    const ack = ackOf(message, duplicate, frame.client_id);
    const at = frame.type === "edit" ? message.editedAt : message.deletedAt;
    if (at !== null) ack[frame.type === "edit" ? "edited_at" : "deleted_at"] = new Date(at).toISOString();
    deps.publishLocal(ackTopic(ws), encode(ack));
  }

  async function handle(ws: ChatSocket, raw: string): Promise<void> {
    // The bucket is charged before the frame is parsed: parsing is the cost a flood imposes.
    if (!deps.frameRate.take(ws.data)) {
      return sendError(ws, deps, "rate_limited", "too many frames on this connection; slow down", refIn(raw));
    }
    const reading = readFrame(raw);
    if (!reading.ok) return sendError(ws, deps, reading.code, reading.message, reading.ref);
    const { frame } = reading;
    const { conversation, principal } = ws.data;
    switch (frame.type) {
      case "message": {
        if (!deps.userBuckets.take(principal.userId).ok) {
          return sendError(
            ws,
            deps,
            "rate_limited",
            "too many messages from this user; slow down",
            frame.client_id,
          );
        }
        joinAckTopic(ws);
        const started = performance.now();
        try {
          const { message, duplicate } = await chat.send(
            conversation,
            principal.userId,
            frame.text ?? "",
            frame.client_id,
            frame.attachments,
            frame.reply_to,
          );
          deps.publishLocal(ackTopic(ws), encode(ackOf(message, duplicate, message.clientId ?? undefined)));
          metrics.ackLatency.observe((performance.now() - started) / 1000);
        } catch (err) {
          reportFailure(ws, err, frame.client_id);
        }
        return;
      }
      case "edit":
      case "delete":
        return handleChange(ws, frame);
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
        return reauthenticateInTurn(ws, frame.token);
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
      const principal = await deps.authFailures.guard(ws.data.ip, () =>
        deps.identity.authenticate({ token, cookies: ws.data.cookies }),
      );
      if (principal.userId !== ws.data.principal.userId) {
        sendError(ws, deps, "forbidden", "the new token names another user");
        ws.close(1008, "token user changed");
        return;
      }
      if (!(await stillAllowed(ws, { token, cookies: ws.data.cookies }, principal))) return;
      ws.data.principal = principal;
      expiry.arm(ws, principal.expiresAt);
      send(ws, {
        type: "auth_ok",
        ...(principal.expiresAt !== undefined
          ? { expires_at: new Date(principal.expiresAt * 1000).toISOString() }
          : {}),
      });
    } catch (err) {
      reportFailure(ws, err, undefined);
      countFailedAuth(ws, err);
    }
  }

  /** One `auth` frame at a time per socket; once the socket is closing for refusals, the rest are dropped. */
  function reauthenticateInTurn(ws: ChatSocket, token: string): Promise<void> {
    const turn = (ws.data.authTurn ?? Promise.resolve()).then(() => {
      if ((ws.data.failedAuths ?? 0) >= MAX_FAILED_AUTH_FRAMES) return;
      return reauthenticate(ws, token);
    });
    ws.data.authTurn = turn;
    return turn;
  }

  /**
   * The user may have lost the lesson since the socket opened (an enrollment ended): asks the
   * identity backend again (through its cache). A refusal closes with 1008; an outage leaves
   * the socket on its old deadline and reports `unavailable`.
   */
  async function stillAllowed(ws: ChatSocket, cred: Credentials, principal: Principal): Promise<boolean> {
    const c = ws.data.conversation;
    try {
      await resolveParties(deps.identity, principal, { lessonId: c.lessonId, studentId: c.studentId }, cred);
      return true;
    } catch (err) {
      if (!(err instanceof AppError) || (err.status !== 403 && err.status !== 404)) throw err;
      sendError(ws, deps, "forbidden", "access to this lesson has ended");
      ws.close(1008, "lesson access ended");
      return false;
    }
  }

  return {
    open(ws: ChatSocket) {
      const { conversation, principal, since } = ws.data;
      deps.sockets.add(ws);
      expiry.arm(ws, principal.expiresAt);
      metrics.connectionsOpened.inc();
      // Typing and presence for this participant are not part of the ordered history.
      ws.subscribe(participantTopic(conversation.id, principal.userId));
      send(ws, {
        type: "ready",
        conversation_id: conversation.id,
        user_id: principal.userId,
        lesson_id: conversation.lessonId,
        mentor_id: conversation.mentorId,
        student_id: conversation.studentId,
      });
      const other = otherParty(conversation, principal.userId);
      deps.announcer.opened(conversation, principal.userId, deps.now());
      if (since === undefined) {
        ws.subscribe(conversationTopic(conversation.id));
      } else {
        ws.data.resuming = true;
        ws.data.resumeAfter = since;
        ws.data.changesAfter = positionAfterMessage(since);
        pumpResume(ws);
      }
      const snapshot = ({ online, lastSeen }: PresenceStatus) => {
        if (!deps.sockets.has(ws)) return;
        send(ws, {
          type: "presence",
          user_id: other,
          online,
          ...(lastSeen !== null ? { last_seen: new Date(lastSeen).toISOString() } : {}),
        });
      };
      const failed = (err: unknown) => logger.warn("presence snapshot failed", { error: err });
      // A local view answers at once, so the snapshot shares the write of `ready`; the shared
      // view in Redis answers later. Either way the snapshot follows the backlog sent so far.
      if (presence.statusNow) {
        try {
          snapshot(presence.statusNow(other));
        } catch (err) {
          failed(err);
        }
      } else presence.status(other).then(snapshot, failed);
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
      expiry.disarm(ws);
      deps.unwatch(conversation.id);
      deps.announcer.closed(conversation, principal.userId, deps.now());
      logger.debug("connection closed", { connId: ws.data.connId, code });
    },
  };
}
