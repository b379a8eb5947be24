import { zValidator } from "@hono/zod-validator";
import { Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { z } from "zod";
import type { Authenticate } from "../auth/authenticate.ts";
import { bearerFromHeader, sameSecret } from "../auth/credentials.ts";
import type { OriginCheck } from "../auth/origin.ts";
import { checkClaimedUser, isParticipant } from "../domain/access.ts";
import type { Attachments } from "../domain/attachments.ts";
import { changeKey, messageKey, type PublishFence } from "../domain/publish-fence.ts";
import type { KeyedBuckets } from "../domain/rate.ts";
import { AppError, errorBody, forbidden, notFound, toAppError, unauthorized } from "../errors.ts";
import type { Principal } from "../identity/types.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { Conversation, ConversationSummary } from "../model/types.ts";
import {
  attachmentParamSchema,
  attachmentUploadQuerySchema,
  changesQuerySchema,
  conversationParamSchema,
  conversationsQuerySchema,
  encodeChangeCursor,
  messagesQuerySchema,
  presenceQuerySchema,
} from "../protocol/params.ts";
import { toWireChange, toWireConversation, toWireMessage } from "../protocol/wire.ts";
import type { ChatStore } from "../store/sqlite/index.ts";
import { serveAttachment } from "./attachment-response.ts";
import { openApiDocument } from "./openapi.ts";
import { prime, readUpload } from "./upload-body.ts";

export interface Readiness {
  ready: boolean;
  checks: Record<string, Record<string, unknown> & { ok: boolean }>;
}

export interface HttpDeps {
  store: ChatStore;
  /** What is committed but not yet durable: no page shows it. */
  fence: PublishFence;
  attachments: Attachments;
  presence: (userId: number) => Promise<{ online: boolean; lastSeen: number | null }>;
  restBuckets: KeyedBuckets;
  originAllowed: OriginCheck;
  metrics: Metrics;
  logger: Logger;
  readiness: () => Readiness;
  metricsToken?: string;
  authenticate: Authenticate;
  /** With MongoDB: reads it through into the store, so history this instance never wrote is served. */
  history?: {
    conversation(id: string): Promise<ConversationSummary | Conversation | null>;
    syncPage(
      conversationId: string,
      window: { before?: string; after?: string; limit: number },
    ): Promise<void>;
    syncConversationsOf(userId: number): Promise<void>;
  };
  /** Extra routes (the demo page) mounted by the composition root. */
  extend?: (app: Hono<Env>) => void;
}

type Env = { Variables: { principal: Principal } };

/** Every validator renders its complaint in the service's error shape, naming the field. */
function validate<T extends z.ZodType>(target: "query" | "param", schema: T) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      const issue = result.error.issues[0];
      const field = issue?.path.join(".") || target;
      throw new AppError(400, "bad_request", `${field}: ${issue?.message ?? "invalid"}`);
    }
  });
}

export function createHttpApp(deps: HttpDeps) {
  const { store, metrics } = deps;
  const app = new Hono<Env>();

  app.use("*", async (c, next) => {
    await next();
    metrics.httpRequests.inc({ status: `${String(c.res.status)[0]}xx` });
  });

  app.use(
    "*",
    cors({
      origin: (origin) => (deps.originAllowed(origin) ? origin : null),
      allowHeaders: ["Authorization", "Content-Type", "X-Filename", "Range", "If-None-Match", "If-Range"],
      allowMethods: ["GET", "POST", "OPTIONS"],
      // What a cross-origin SDK reads of a download and of a 503 while a copy is pending.
      exposeHeaders: ["Content-Disposition", "Content-Range", "ETag", "Retry-After"],
      maxAge: 600,
      credentials: true,
    }),
  );

  app.onError((err, c) => {
    const appErr = toAppError(err);
    if (appErr.status >= 500) deps.logger.error("request failed", { path: c.req.path, error: err });
    if (appErr.retryAfterS !== undefined) c.header("Retry-After", String(appErr.retryAfterS));
    if (appErr.status === 401) c.header("WWW-Authenticate", 'Bearer realm="chat"');
    return c.json(errorBody(appErr), appErr.status);
  });

  app.notFound((c) => c.json(errorBody(notFound(`no route for ${c.req.method} ${c.req.path}`)), 404));

  app.get("/healthz", (c) => c.json({ ok: true }));

  app.get("/readyz", (c) => {
    const r = deps.readiness();
    return c.json(r, r.ready ? 200 : 503);
  });

  app.get("/metrics", (c) => {
    const given = bearerFromHeader(c.req.header("authorization") ?? null);
    if (deps.metricsToken && !sameSecret(given, deps.metricsToken)) {
      throw unauthorized("a metrics token is required");
    }
    return c.text(metrics.registry.render(), 200, { "content-type": "text/plain; version=0.0.4" });
  });

  app.get("/openapi.json", (c) => c.json(openApiDocument()));

  const authenticate: MiddlewareHandler<Env> = async (c, next) => {
    const { principal } = await deps.authenticate(c.req.raw, {
      missing: "an Authorization: Bearer token is required",
    });
    const limit = deps.restBuckets.take(`u:${principal.userId}`);
    if (!limit.ok) throw new AppError(429, "rate_limited", "too many requests; slow down", limit.retryAfterS);
    c.set("principal", principal);
    await next();
  };

  /** The original API took `user_id` from the query; here it may only repeat the token's user. */
  const sameUser: MiddlewareHandler<Env> = async (c, next) => {
    checkClaimedUser(c.get("principal"), numberOrUndefined(c.req.query("user_id")));
    await next();
  };

  /** The conversation, if the caller takes part in it; otherwise it does not exist for them. */
  const ownConversation = async (id: string, principal: Principal) => {
    const conversation = deps.history ? await deps.history.conversation(id) : store.conversation(id);
    if (!conversation || !isParticipant(conversation, principal.userId)) {
      throw notFound("no such conversation");
    }
    return conversation;
  };

  app.get(
    "/conversations",
    authenticate,
    sameUser,
    validate("query", conversationsQuerySchema),
    async (c) => {
      const q = c.req.valid("query");
      const me = c.get("principal");
      await deps.history?.syncConversationsOf(me.userId);
      const list = store.conversationsOf(me.userId, {
        mentorId: q.mentor_id,
        studentId: q.student_id,
        lessonId: q.lesson_id,
      });
      return c.json(list.map(toWireConversation));
    },
  );

  app.get(
    "/conversations/:id",
    authenticate,
    sameUser,
    validate("param", conversationParamSchema),
    async (c) => {
      const me = c.get("principal");
      const conversation = await ownConversation(c.req.valid("param").id, me);
      return c.json(toWireConversation(store.summarise(conversation, me.userId)));
    },
  );

  app.get("/messages", authenticate, sameUser, validate("query", messagesQuerySchema), async (c) => {
    const q = c.req.valid("query");
    const conversation = await ownConversation(q.conversation_id, c.get("principal"));
    const window = { before: q.before, after: q.after, limit: q.limit };
    await deps.history?.syncPage(conversation.id, window);
    if (q.before === undefined && q.after === undefined && !deps.fence.holds(conversation.id)) {
      return c.body(store.latestPageJson(conversation.id, q.limit), 200, {
        "content-type": "application/json",
      });
    }
    const page = store.page(conversation.id, { before: q.before, after: q.after, limit: q.limit });
    // Held messages are the newest: a page after a cursor stops before them, so its last id is
    // a cursor that skips nothing; other pages just leave them out.
    const firstHeld =
      q.after === undefined ? -1 : page.findIndex((m) => !deps.fence.shows(conversation.id, messageKey(m)));
    const shown =
      firstHeld === -1 ? deps.fence.visible(conversation.id, page, messageKey) : page.slice(0, firstHeld);
    return c.json(shown.map(toWireMessage));
  });

  /** The change feed after a cursor: what a client that was away must apply to its pages. */
  app.get("/messages/changes", authenticate, sameUser, validate("query", changesQuerySchema), async (c) => {
    const q = c.req.valid("query");
    const conversation = await ownConversation(q.conversation_id, c.get("principal"));
    const from = q.after ?? { at: 0, messageId: "" };
    // Stops before the first held change: the cursor must not pass what the client has not seen.
    const all = store.changesAfter(conversation.id, from, q.limit);
    const held = all.findIndex((e) => !deps.fence.shows(conversation.id, changeKey(e)));
    const entries = held === -1 ? all : all.slice(0, held);
    return c.json({
      changes: entries.map((e) => toWireChange(e.change)),
      cursor: encodeChangeCursor(entries.at(-1)?.position ?? from),
    });
  });

  app.post("/attachments", authenticate, validate("query", attachmentUploadQuerySchema), async (c) => {
    const me = c.get("principal");
    // Membership first: a stranger's body is never read.
    const conversation = await ownConversation(c.req.valid("query").conversation_id, me);
    const file = await prime(readUpload(c.req.raw, deps.attachments.maxBytes));
    return c.json(await deps.attachments.upload(file, me.userId, conversation.id), 201);
  });

  app.get("/attachments/:id", authenticate, validate("param", attachmentParamSchema), async (c) => {
    const me = c.get("principal");
    const opened = await deps.attachments.open(c.req.valid("param").id, async (conversationId) => {
      try {
        await ownConversation(conversationId, me);
        return true;
      } catch (err) {
        if (err instanceof AppError && err.status === 404) return false;
        throw err;
      }
    });
    return serveAttachment(c.req.raw, opened, opened.read);
  });

  app.get("/presence", authenticate, validate("query", presenceQuerySchema), async (c) => {
    const me = c.get("principal");
    const { user_id } = c.req.valid("query");
    if (!store.shareConversation(me.userId, user_id)) {
      throw forbidden("you share no conversation with this user");
    }
    const { online, lastSeen } = await deps.presence(user_id);
    return c.json({ online, ...(lastSeen !== null ? { last_seen: new Date(lastSeen).toISOString() } : {}) });
  });

  deps.extend?.(app);
  return app;
}

function numberOrUndefined(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v))
    throw new AppError(400, "bad_request", "user_id: expected a positive whole number");
  return Number(v);
}
