import type { Server } from "bun";
import type { Authenticate } from "../auth/authenticate.ts";
import { BEARER_SUBPROTOCOL, bearerFromSubprotocol } from "../auth/credentials.ts";
import type { OriginCheck } from "../auth/origin.ts";
import type { UpgradeBudget } from "../auth/upgrade-budget.ts";
import { resolveParties } from "../domain/access.ts";
import type { Chat } from "../domain/chat.ts";
import type { Presence } from "../domain/presence.ts";
import type { SharedRate } from "../domain/rate.ts";
import { AppError, errorResponse } from "../errors.ts";
import type { Identity } from "../identity/types.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { connectQuerySchema } from "../protocol/params.ts";
import type { SessionData } from "./session.ts";

export interface UpgradeDeps {
  identity: Identity;
  chat: Chat;
  /** Open sockets per user here, for the cap (closes held by the presence debounce do not count). */
  presence: Pick<Presence, "connections">;
  /** Takes the bus subscription for a conversation before its socket opens (see Bus.watch). */
  watch: (conversationId: string) => Promise<void>;
  unwatch: (conversationId: string) => void;
  originAllowed: OriginCheck;
  metrics: Metrics;
  logger: Logger;
  /** Each socket starts with a full frame budget of this rate. */
  frameRate: SharedRate;
  maxConnectionsPerUser: number;
  isDraining: () => boolean;
  authenticate: Authenticate;
  budget: UpgradeBudget;
  clientIp: (req: Request) => string;
}

let connSeq = 0;

/**
 * Authenticates and authorises a `/ws` request, opens (or creates) its conversation, then
 * upgrades. Every refusal is an HTTP answer with a JSON reason, before any socket exists.
 */
export function createUpgradeHandler(deps: UpgradeDeps) {
  const refuse = (err: AppError) => {
    deps.metrics.connectionsRefused.inc({ reason: err.code });
    return errorResponse(err);
  };

  const pending = new Map<number, number>();
  const release = (userId: number) => {
    const n = (pending.get(userId) ?? 1) - 1;
    if (n <= 0) pending.delete(userId);
    else pending.set(userId, n);
  };

  return async (req: Request, server: Server<SessionData>): Promise<Response | undefined> => {
    if (deps.isDraining()) {
      return refuse(
        new AppError(503, "unavailable", "server is shutting down; reconnect to another instance"),
      );
    }
    if (!deps.originAllowed(req.headers.get("origin"))) {
      return refuse(new AppError(403, "forbidden", "origin not allowed"));
    }
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return refuse(new AppError(400, "bad_request", "expected a WebSocket upgrade"));
    }
    const url = new URL(req.url);
    const query = connectQuerySchema.safeParse(Object.fromEntries(url.searchParams));
    if (!query.success) {
      const issue = query.error.issues[0];
      return refuse(new AppError(400, "bad_request", `${issue?.path.join(".")}: ${issue?.message}`));
    }
    const protocolToken = bearerFromSubprotocol(req.headers.get("sec-websocket-protocol"));

    let data: SessionData;
    let reservedFor: number | undefined;
    const ip = deps.clientIp(req);
    try {
      deps.budget.chargeAddress(ip);
      const { principal, cred } = await deps.authenticate(req, {
        queryToken: query.data.token,
        subprotocol: true,
        ip,
      });
      deps.budget.chargeUser(principal.userId);
      // Count upgrades still in flight too: a burst of parallel connects must not slip past the limit.
      const inFlight = pending.get(principal.userId) ?? 0;
      if (deps.presence.connections(principal.userId) + inFlight >= deps.maxConnectionsPerUser) {
        return refuse(new AppError(429, "rate_limited", "too many open connections for this user", 5));
      }
      pending.set(principal.userId, inFlight + 1);
      reservedFor = principal.userId;
      const parties = await resolveParties(
        deps.identity,
        principal,
        {
          lessonId: query.data.lesson_id,
          studentId: query.data.student_id,
          claimedUserId: query.data.user_id,
        },
        cred,
      );
      data = {
        connId: ++connSeq,
        ip,
        principal,
        cookies: cred.cookies,
        conversation: await deps.chat.openConversation(parties, query.data.since),
        since: query.data.since,
        ...deps.frameRate.full(),
        openedAt: Date.now(),
      };
      // A browser that offered the bearer subprotocol only completes the handshake if we pick it.
      const headers = protocolToken ? { "Sec-WebSocket-Protocol": BEARER_SUBPROTOCOL } : undefined;
      // Listen on the bus first, so nothing sent on another instance falls between the socket's
      // backlog read and its live traffic.
      await deps.watch(data.conversation.id);
      if (server.upgrade(req, { data, headers })) return undefined;
      deps.unwatch(data.conversation.id);
      return refuse(new AppError(400, "bad_request", "WebSocket upgrade failed"));
    } catch (err) {
      if (err instanceof AppError) return refuse(err);
      deps.logger.error("upgrade failed", { error: err });
      return refuse(new AppError(500, "internal", "internal error"));
    } finally {
      // Bun runs `open` inside server.upgrade, so from here presence counts the connection.
      if (reservedFor !== undefined) release(reservedFor);
    }
  };
}
