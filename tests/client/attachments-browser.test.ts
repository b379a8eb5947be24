import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { makePdf, makePng } from "../helpers/files.ts";
import { type ChildService, spawnService, tempDir } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

/**
 * The demo page in a real Chromium: the mentor attaches a screenshot (file picker) and a PDF
 * (drag and drop), sends them, and the student's page shows the image as a decoded thumbnail
 * and the PDF as a download link.
 */

const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"];
const WAIT = { timeout: 20_000 };

const dir = tempDir("chat-attach-browser-");
let svc: ChildService | null = null;
let browser: Browser | null = null;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  } catch (err) {
    throw new Error(`Chromium could not launch from ${CHROMIUM}: ${(err as Error).message}`);
  }
  svc = await spawnService({ dir: dir.path, env: { DEMO_PAGE: "true" } });
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await svc?.stop();
  dir.remove();
});

async function open(userId: number, studentId?: number): Promise<Page> {
  if (!browser || !svc) throw new Error("Chromium or the service did not start (see beforeAll)");
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err.message));
  await page.goto(`${svc.url}/demo`);
  await page.locator("#token").fill(await mintToken(userId));
  if (studentId !== undefined) await page.locator("#student").fill(String(studentId));
  await page.locator("#open").click();
  await page.locator('#status[data-state="open"]').waitFor(WAIT);
  return page;
}

test("a screenshot sent from one page shows as a thumbnail on the other", async () => {
  const mentor = await open(10, 15);
  const student = await open(15);
  const png = makePng(64, 48, 12);
  const shot = join(dir.path, "screenshot.png");
  await Bun.write(shot, png);

  await mentor.locator("#file").setInputFiles(shot);
  await mentor.locator('#pending .chip[data-state="done"]').waitFor(WAIT);
  // Drag and drop: a DataTransfer with a File, dispatched on the chat card.
  await mentor.evaluate(
    (bytes) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], "worksheet.pdf", { type: "application/pdf" }));
      document
        .getElementById("chat")!
        .dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
    },
    Array.from(makePdf("worksheet")),
  );
  await mentor.locator('#pending .chip[data-state="done"]').nth(1).waitFor(WAIT);
  await mentor.locator("#text").fill("here is my screen");
  await mentor.locator("#text").press("Enter");

  const thumb = student.locator("#messages li img.thumb");
  await thumb.waitFor(WAIT);
  await student.waitForFunction(
    () => {
      const img = document.querySelector<HTMLImageElement>("#messages li img.thumb");
      return (img?.complete ?? false) && (img?.naturalWidth ?? 0) > 0;
    },
    null,
    WAIT,
  );
  expect(await thumb.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight])).toEqual([
    64, 48,
  ]);
  const link = student.locator("#messages li a.file");
  await link.waitFor(WAIT);
  expect(await link.textContent()).toContain("worksheet.pdf");
  await student.locator("#messages li", { hasText: "here is my screen" }).waitFor(WAIT);
  // The sender sees the same thumbnail once the server echoed the message.
  await mentor.waitForFunction(
    () =>
      (document.querySelector<HTMLImageElement>("#messages li[data-id] img.thumb")?.naturalWidth ?? 0) > 0,
    null,
    WAIT,
  );
}, 60_000);
