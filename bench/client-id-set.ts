import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClientIdIndex } from "../src/store/sqlite/client-ids.ts";
import { openStore } from "../src/store/sqlite/index.ts";

/**
 * What the in-memory client_id check (store/sqlite/client-ids.ts) costs besides a send: reading
 * a conversation's set on its first use after a start, its memory per pair, a resend of a recent
 * message (found near the top of a newest-first scan), and the worst case, a fingerprint shared by
 * chance (the whole conversation scanned, about n / 2^32 of sends). Then what a set costs per
 * conversation besides its pairs: 100,000 conversations of one pair each.
 *   npx bun bench/client-id-set.ts [--rows 100000]
 */

const { values } = parseArgs({ options: { rows: { type: "string", default: "100000" } } });
const rows = Number(values.rows);
const dir = mkdtempSync(join(tmpdir(), "chat-client-id-set-"));
const path = join(dir, "chat.db");
const text = "hello there, this is a message of some length";
const oid = (i: number) => (0x65000000_0000 + i).toString(16).padStart(24, "0");

let store = openStore({ path, synchronous: "OFF" });
store.openConversation("c1", { lessonId: 5, mentorId: 10, studentId: 15 }, 1);
store.transaction(() => {
  for (let i = 0; i < rows; i++)
    store.insertMessage({
      id: oid(i),
      conversationId: "c1",
      senderId: i % 2 ? 10 : 15,
      text,
      createdAt: 1_700_000_000_000 + i,
      clientId: crypto.randomUUID(),
    });
});
store.close();

store = openStore({ path, synchronous: "OFF" });
const ms = (f: () => void, n = 1): number => {
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  return (performance.now() - t) / n;
};
const load = ms(() => store.messageByClientId("c1", 15, "not-there"));
const { bytes } = store.clientIdStats();
const newest = store.page("c1", { limit: 1 })[0]!;
const resend = ms(() => store.messageByClientId("c1", newest.senderId, newest.clientId!), 1000);
const miss = ms(() => store.messageByClientId("c1", 15, crypto.randomUUID()), 10_000);
store.close();
// A chance match runs the confirming query (messages.ts) with nothing to find: the whole scan.
const db = new Database(path, { readonly: true });
const confirm = db.query(
  "SELECT * FROM messages WHERE conversation_id = ? AND sender_id = ? AND client_id = ? ORDER BY id DESC LIMIT 1",
);
const full = ms(() => confirm.get("c1", 15, "not-there"), 20);
db.close();
rmSync(dir, { recursive: true, force: true });

console.log(`conversation of ${rows.toLocaleString("en")} messages`);
console.log(`  set read on first use:            ${load.toFixed(1)} ms`);
console.log(`  set memory:                        ${(bytes / rows).toFixed(2)} bytes / pair`);
console.log(`  a fresh client_id (no SQL):        ${(miss * 1000).toFixed(2)} µs`);
console.log(`  a resend of the newest message:    ${(resend * 1000).toFixed(2)} µs`);
console.log(`  a chance match (whole scan):       ${full.toFixed(2)} ms`);

// Many small conversations: what each set costs besides its slots (client-ids.ts counts ~384 B).
const small = new Database(":memory:");
small.run("CREATE TABLE messages (conversation_id TEXT, id TEXT, sender_id INTEGER, client_id TEXT)");
const index = createClientIdIndex(small);
Bun.gc(true);
const mem0 = process.memoryUsage();
const CONVERSATIONS = 100_000;
for (let i = 0; i < CONVERSATIONS; i++) index.add(`c${String(i).padStart(23, "0")}`, 15, "k1");
Bun.gc(true);
const mem1 = process.memoryUsage();
console.log(`${CONVERSATIONS.toLocaleString("en")} conversations of one pair`);
console.log(
  `  heap per conversation:             ${((mem1.heapUsed - mem0.heapUsed) / CONVERSATIONS).toFixed(0)} bytes`,
);
console.log(
  `  RSS per conversation:              ${((mem1.rss - mem0.rss) / CONVERSATIONS).toFixed(0)} bytes`,
);
console.log(`  counted against the budget:        ${(index.stats().bytes / CONVERSATIONS).toFixed(0)} bytes`);
small.close();
