import { afterAll, beforeAll } from "bun:test";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

/** One headless Chromium (the system's, via playwright-core) for a test file, and fresh pages in it. */

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Launches in `beforeAll` (failing the file, with the reason, when it cannot) and closes in `afterAll`. */
export function chromiumForFile() {
  let browser: Browser | null = null;
  const contexts: BrowserContext[] = [];
  beforeAll(async () => {
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    } catch (err) {
      throw new Error(`Chromium could not launch from ${CHROMIUM}: ${(err as Error).message}`);
    }
  });
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
  });
  return {
    /** A page in a context of its own (its own cookies and storage), page errors logged. */
    async newPage(): Promise<Page> {
      if (!browser) throw new Error("Chromium did not launch (see beforeAll)");
      const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
      contexts.push(context);
      const page = await context.newPage();
      page.on("pageerror", (err) => console.error("page error:", err.message));
      return page;
    },
  };
}
