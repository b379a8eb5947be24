import { afterAll, expect, test } from "bun:test";
import type { Page } from "playwright-core";
import { chromiumForFile } from "../helpers/chromium.ts";
import { type ChildService, spawnService, tempDir } from "../helpers/service.ts";
import { mintToken } from "../helpers/tokens.ts";

/**
 * The demo page in a real Chromium: reply with a quote, edit one's own bubble ("edited" mark on
 * both pages), delete one's own, and the mentor deletes the student's (moderation). The student
 * sees no Edit on the mentor's bubbles and no Delete either.
 */

const WAIT = { timeout: 20_000 };

const dir = tempDir("chat-demo-edits-");
let svc: ChildService | null = null;
const { newPage } = chromiumForFile();

afterAll(async () => {
  await svc?.stop();
  dir.remove();
});

async function openAs(userId: number): Promise<Page> {
  if (!svc) throw new Error("the service did not start");
  const page = await newPage();
  await page.goto(`${svc.url}/demo`);
  await page.locator("#token").fill(await mintToken(userId));
  if (userId === 10) await page.locator("#student").fill("15");
  await page.locator("#open").click();
  await page.locator('#status[data-state="open"]').waitFor(WAIT);
  return page;
}

const bubble = (page: Page, text: string) => page.locator("#messages li", { hasText: text }).first();

async function sendFrom(page: Page, text: string): Promise<void> {
  await page.locator("#text").fill(text);
  await page.locator("#text").press("Enter");
}

/** The action buttons show on hover. */
async function act(page: Page, text: string, action: "reply" | "edit" | "delete"): Promise<void> {
  const b = bubble(page, text);
  await b.hover();
  await b.locator(`button[data-action="${action}"]`).click();
}

test("reply, edit and delete in the demo, on both pages", async () => {
  svc = await spawnService({ dir: dir.path, env: { DEMO_PAGE: "true" } });
  const mentor = await openAs(10);
  const student = await openAs(15);

  await sendFrom(student, "what is a closure?");
  await bubble(mentor, "what is a closure?").waitFor(WAIT);

  // Reply with a quote of the original.
  await act(mentor, "what is a closure?", "reply");
  await mentor.locator("#mode", { hasText: "Replying to: what is a closure?" }).waitFor(WAIT);
  await sendFrom(mentor, "a function with its scopee");
  for (const p of [mentor, student]) {
    await bubble(p, "a function with its scopee")
      .locator(".quote", { hasText: "what is a closure?" })
      .waitFor(WAIT);
  }

  // Edit one's own bubble: both pages show the new text and the "edited" mark.
  await act(mentor, "a function with its scopee", "edit");
  await expect(mentor.locator("#text").inputValue()).resolves.toBe("a function with its scopee");
  await mentor.locator("#text").fill("a function with its scope");
  await mentor.locator("#text").press("Enter");
  for (const p of [mentor, student]) {
    await p.locator("#messages li .edited").first().waitFor(WAIT);
    await p.waitForFunction(
      () =>
        Array.from(document.querySelectorAll("#messages li")).some(
          (li) => li.firstChild?.textContent === "a function with its scope",
        ),
      null,
      WAIT,
    );
  }

  // The student may neither edit nor delete the mentor's bubble; may edit and delete their own.
  const theirs = bubble(student, "a function with its scope");
  await theirs.hover();
  expect(await theirs.locator('button[data-action="edit"]').count()).toBe(0);
  expect(await theirs.locator('button[data-action="delete"]').count()).toBe(0);
  expect(await bubble(student, "what is a closure?").locator('button[data-action="edit"]').count()).toBe(1);

  await sendFrom(student, "oops, wrong chat");
  await bubble(mentor, "oops, wrong chat").waitFor(WAIT);
  await act(student, "oops, wrong chat", "delete");
  for (const p of [mentor, student]) {
    await p
      .locator('#messages li[data-deleted="true"]', { hasText: "This message was deleted" })
      .waitFor(WAIT);
    expect(await p.locator("#messages li", { hasText: "oops, wrong chat" }).count()).toBe(0);
  }

  // The mentor moderates: deletes the student's question; the reply's quote says so.
  await act(mentor, "what is a closure?", "delete");
  for (const p of [mentor, student]) {
    await p.waitForFunction(
      () => document.querySelectorAll('#messages li[data-deleted="true"]').length === 2,
      null,
      WAIT,
    );
    await bubble(p, "a function with its scope")
      .locator(".quote", { hasText: "a deleted message" })
      .waitFor(WAIT);
  }

  // A reload reads the same state back from REST.
  await student.reload();
  await student.locator("#token").fill(await mintToken(15));
  await student.locator("#open").click();
  await student.locator("#messages li .edited").first().waitFor(WAIT);
  expect(await student.locator('#messages li[data-deleted="true"]').count()).toBe(2);
}, 60_000);
