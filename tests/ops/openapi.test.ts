import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { z } from "zod";
import {
  conversationResponseSchema,
  errorResponseSchema,
  legacyUserQuerySchema,
  openApiDocument,
  presenceResponseSchema,
  readinessResponseSchema,
} from "../../src/http/openapi.ts";
import { messageSchema } from "../../src/protocol/frames.ts";
import {
  attachmentUploadQuerySchema,
  connectQuerySchema,
  conversationsQuerySchema,
  messagesQuerySchema,
  presenceQuerySchema,
} from "../../src/protocol/params.ts";
import { startTestService, type TestService } from "../helpers/service.ts";

/** /openapi.json covers every route the Hono app registers, with the parameters it validates. */

type Operation = {
  parameters?: Array<{ name: string; in: string; required: boolean }>;
  responses: Record<string, unknown>;
};
const doc = openApiDocument() as unknown as {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
};

/** Which zod schema each documented operation's query string is validated with. */
const QUERY_SCHEMAS: Record<string, z.ZodObject> = {
  "/attachments": attachmentUploadQuerySchema,
  "/conversations": conversationsQuerySchema,
  "/conversations/{id}": legacyUserQuerySchema,
  "/messages": messagesQuerySchema,
  "/presence": presenceQuerySchema,
  "/ws": connectQuerySchema,
};

/** The routes of the app the real service answers with; middleware registers as ALL on "*". */
async function appRoutes() {
  const svc = await startTestService();
  try {
    return svc.app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({ method: r.method.toLowerCase(), path: r.path.replace(/:(\w+)/g, "{$1}") }));
  } finally {
    await svc.stop();
  }
}

describe("the OpenAPI document", () => {
  let routes: Array<{ method: string; path: string }> = [];
  beforeAll(async () => {
    routes = await appRoutes();
  });

  test("is OpenAPI 3.1 and every $ref resolves", () => {
    expect(doc.openapi).toBe("3.1.0");
    const text = JSON.stringify(doc);
    const refs = [...text.matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    const schemas = (doc as unknown as { components: { schemas: Record<string, unknown> } }).components
      .schemas;
    for (const name of refs) expect(schemas[name]).toBeDefined();
  });

  test("documents every route the app registers", () => {
    expect(routes.length).toBeGreaterThanOrEqual(8);
    const missing = routes.filter((r) => !doc.paths[r.path]?.[r.method]);
    expect(missing).toEqual([]);
  });

  test("documents no REST route the app does not have (/ws is served beside the app)", () => {
    const registered = new Set(routes.map((r) => `${r.method} ${r.path}`));
    const extra = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`))
      .filter((op) => op !== "get /ws" && !registered.has(op));
    expect(extra).toEqual([]);
  });

  test("query parameters are exactly the validated ones, required where the schema requires", () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        const documented = (op.parameters ?? [])
          .filter((p) => p.in === "query")
          .map((p) => ({ name: p.name, required: p.required }))
          .sort((a, b) => a.name.localeCompare(b.name));
        const schema = QUERY_SCHEMAS[path];
        const expected = schema
          ? Object.entries(schema.shape)
              .map(([name, field]) => ({
                name,
                required: !(field as z.ZodType).safeParse(undefined).success,
              }))
              .sort((a, b) => a.name.localeCompare(b.name))
          : [];
        expect({ path, params: documented }).toEqual({ path, params: expected });
      }
    }
  });

  test("path parameters match the route's placeholders", () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const placeholders = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      for (const op of Object.values(ops)) {
        const inPath = (op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name);
        expect(inPath).toEqual(placeholders);
      }
    }
  });
});

describe("real responses match the documented shapes", () => {
  let s: TestService;
  beforeAll(async () => {
    s = await startTestService();
  });
  afterAll(async () => {
    await s.stop();
  });

  test("REST answers parse with the response schemas, and /openapi.json serves the document", async () => {
    const mentor = await s.connect(10, { lesson_id: 5, student_id: 15 });
    const ready = await mentor.next("ready");
    mentor.send({ type: "message", text: "documented", client_id: "doc-1" });
    await mentor.next("ack");

    const list = await (await s.get("/conversations", 10)).json();
    expect(list.length).toBe(1);
    for (const c of list) conversationResponseSchema.parse(c);
    conversationResponseSchema.parse(
      await (await s.get(`/conversations/${ready.conversation_id}`, 15)).json(),
    );
    const messages = await (await s.get(`/messages?conversation_id=${ready.conversation_id}`, 15)).json();
    expect(messages.length).toBe(1);
    for (const m of messages) messageSchema.strict().parse(m);
    presenceResponseSchema.parse(await (await s.get("/presence?user_id=10", 15)).json());
    readinessResponseSchema.parse(await (await s.get("/readyz")).json());

    const refused = await s.get("/conversations");
    expect(refused.status).toBe(401);
    errorResponseSchema.parse(await refused.json());

    const served = await s.get("/openapi.json");
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
  });
});
