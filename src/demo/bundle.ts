// The demo's sources are imported as text so that `bun build --compile` embeds them in the
// binary; Bun.build then bundles them from memory at startup, with no files on disk.
// TypeScript cannot see import attributes, hence the expect-errors (a text import is a string).
// @ts-expect-error text import
import sdkBackoff from "../client/backoff.ts" with { type: "text" };
// @ts-expect-error text import
import sdkClient from "../client/chat-client.ts" with { type: "text" };
// @ts-expect-error text import
import sdkClientId from "../client/client-id.ts" with { type: "text" };
// @ts-expect-error text import
import sdkEmitter from "../client/emitter.ts" with { type: "text" };
// @ts-expect-error text import
import sdkHeartbeat from "../client/heartbeat.ts" with { type: "text" };
// @ts-expect-error text import
import sdkIndex from "../client/index.ts" with { type: "text" };
// @ts-expect-error text import
import sdkOptions from "../client/options.ts" with { type: "text" };
// @ts-expect-error text import
import sdkOutgoing from "../client/outgoing.ts" with { type: "text" };
// @ts-expect-error text import
import sdkRedial from "../client/redial.ts" with { type: "text" };
// @ts-expect-error text import
import sdkRest from "../client/rest.ts" with { type: "text" };
// @ts-expect-error text import
import sdkSeen from "../client/seen.ts" with { type: "text" };
// @ts-expect-error text import
import sdkSignals from "../client/signals.ts" with { type: "text" };
// @ts-expect-error text import
import sdkTokenRefresh from "../client/token-refresh.ts" with { type: "text" };
// @ts-expect-error text import
import sdkTypes from "../client/types.ts" with { type: "text" };
// @ts-expect-error text import
import sdkWaiters from "../client/waiters.ts" with { type: "text" };
// @ts-expect-error text import
import demoApp from "./app.ts" with { type: "text" };
// @ts-expect-error text import
import demoBubbles from "./bubbles.ts" with { type: "text" };
// A text import, not an HTML bundle: the page is served as is.
import page from "./page.html" with { type: "text" };
// @ts-expect-error text import
import demoStaging from "./staging.ts" with { type: "text" };

const ROOT = "/lesson-chat-demo";
const SOURCES: Record<string, string> = {
  [`${ROOT}/client/backoff.ts`]: sdkBackoff,
  [`${ROOT}/client/chat-client.ts`]: sdkClient,
  [`${ROOT}/client/client-id.ts`]: sdkClientId,
  [`${ROOT}/client/emitter.ts`]: sdkEmitter,
  [`${ROOT}/client/heartbeat.ts`]: sdkHeartbeat,
  [`${ROOT}/client/index.ts`]: sdkIndex,
  [`${ROOT}/client/options.ts`]: sdkOptions,
  [`${ROOT}/client/outgoing.ts`]: sdkOutgoing,
  [`${ROOT}/client/redial.ts`]: sdkRedial,
  [`${ROOT}/client/rest.ts`]: sdkRest,
  [`${ROOT}/client/seen.ts`]: sdkSeen,
  [`${ROOT}/client/signals.ts`]: sdkSignals,
  [`${ROOT}/client/token-refresh.ts`]: sdkTokenRefresh,
  [`${ROOT}/client/types.ts`]: sdkTypes,
  [`${ROOT}/client/waiters.ts`]: sdkWaiters,
  [`${ROOT}/demo/app.ts`]: demoApp,
  [`${ROOT}/demo/bubbles.ts`]: demoBubbles,
  [`${ROOT}/demo/staging.ts`]: demoStaging,
};

export interface DemoAssets {
  html: string;
  js: string;
}

/** Bundles the page's script (SDK included) for browsers; fails loudly if it cannot. */
export async function buildDemoAssets(): Promise<DemoAssets> {
  const result = await Bun.build({
    entrypoints: [`${ROOT}/demo/app.ts`],
    files: SOURCES,
    target: "browser",
    format: "esm",
    minify: true,
  } as Parameters<typeof Bun.build>[0]);
  const out = result.outputs[0];
  if (!result.success || !out) {
    throw new Error(`cannot bundle the demo page: ${result.logs.map(String).join("\n")}`);
  }
  return { html: page as unknown as string, js: await out.text() };
}
