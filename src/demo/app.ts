import { type AttachmentRef, ChatClient, type Message, newClientId, type Ready } from "../client/index.ts";
import { createBubbles } from "./bubbles.ts";
import { createStaging } from "./staging.ts";

/**
 * The demo page's script: plain DOM on top of the SDK. Messages live in one map keyed by id,
 * so live frames, resumed frames and history pages merge without duplicates.
 */

const PAGE = 30;
const TYPING_SHOWN_MS = 6000;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

interface DirectoryUser {
  id: number;
  is_mentor: boolean;
  first_name: string;
  last_name: string;
}

const names = new Map<number, string>();
const messages = new Map<string, Message>();
/** Sent but not yet echoed back by the server, by client_id. */
const outbox = new Map<string, { text: string; attachments: AttachmentRef[]; failed?: string }>();
let client: ChatClient | null = null;
let me = 0;
let peer = 0;
let peerViewedUpTo = "";
let iAmMentor = false;
/** The composer's mode: a new message, a reply to one, or an edit of one's own. */
let replyTo: string | undefined;
let editing: string | undefined;
let oldestId: string | undefined;
let typingTimer: ReturnType<typeof setTimeout> | undefined;

const nameOf = (id: number) => names.get(id) ?? `user ${id}`;

const { bubble, messageBubble } = createBubbles({
  client: () => client,
  messages,
  iAmMentor: () => iAmMentor,
});
const staging = createStaging({
  client: () => client,
  chips: () => $("pending"),
  sendButton: () => $<HTMLButtonElement>("send"),
});

async function loadDirectory(): Promise<void> {
  const res = await fetch("/demo/users").catch(() => null);
  if (!res?.ok) return; // no dev tokens on this server: paste one
  const users = (await res.json()) as DirectoryUser[];
  const select = $<HTMLSelectElement>("user");
  for (const u of users) {
    const name = `${u.first_name} ${u.last_name}`.trim() || `user ${u.id}`;
    names.set(u.id, name);
    select.append(new Option(`${name} (${u.is_mentor ? "mentor" : "student"} ${u.id})`, String(u.id)));
  }
  $("pick").hidden = false;
}

async function tokenFor(): Promise<string> {
  const pasted = $<HTMLTextAreaElement>("token").value.trim();
  if (pasted) return pasted;
  const userId = Number($<HTMLSelectElement>("user").value);
  if (!userId) throw new Error("paste a token or pick a user");
  const res = await fetch("/demo/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId, expires_in: Number($<HTMLSelectElement>("ttl").value) }),
  });
  const body = (await res.json()) as { token?: string; error?: { message: string } };
  if (!res.ok || !body.token) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
  return body.token;
}

async function openChat(): Promise<void> {
  $("signin-error").textContent = "";
  const lessonId = Number($<HTMLInputElement>("lesson").value);
  const student = $<HTMLInputElement>("student").value.trim();
  try {
    await tokenFor();
  } catch (err) {
    $("signin-error").textContent = (err as Error).message;
    return;
  }
  client?.close();
  messages.clear();
  outbox.clear();
  oldestId = undefined;
  peerViewedUpTo = "";
  const c = new ChatClient({
    url: location.origin,
    // A function: the SDK asks it again before the token expires and for every reconnect.
    token: tokenFor,
    lessonId,
    studentId: student ? Number(student) : undefined,
  });
  client = c;
  wire(c);
  try {
    await c.connect();
  } catch (err) {
    $("signin-error").textContent = `cannot open the chat: ${(err as Error).message}`;
    return;
  }
  let page: Message[];
  try {
    page = await c.history({ limit: PAGE });
  } catch (err) {
    $("chat-error").textContent = `cannot load history: ${(err as Error).message}`;
    return;
  }
  addMessages(page);
  oldestId = page[0]?.id;
  $("older").hidden = page.length < PAGE;
  render(true);
}

function wire(c: ChatClient): void {
  c.on("state", (s) => {
    const pill = $("status");
    pill.dataset.state = s.state;
    if (s.code === 4001) $("session").textContent = "token expired (4001): reconnecting with a new one";
    pill.textContent =
      s.state === "open"
        ? "connected"
        : s.state === "reconnecting"
          ? `reconnecting${s.attempt > 1 ? ` (try ${s.attempt})` : ""}…`
          : s.state;
  });
  c.on("ready", (r: Ready) => {
    me = r.user_id;
    peer = me === r.mentor_id ? r.student_id : r.mentor_id;
    iAmMentor = me === r.mentor_id;
    $("me").textContent = `signed in as ${nameOf(me)}`;
    $("peer").textContent = `Lesson ${r.lesson_id} · ${nameOf(peer)}`;
    $("signin").hidden = true;
    $("chat").hidden = false;
  });
  c.on("message", (m) => {
    addMessages([m]);
    render();
  });
  c.on("message_edited", (e) => {
    const m = messages.get(e.id);
    if (m) messages.set(e.id, { ...m, text: e.text, edited_at: e.edited_at });
    render();
  });
  c.on("message_deleted", (d) => {
    const m = messages.get(d.id);
    if (m) messages.set(d.id, { ...m, text: undefined, deleted: true, deleted_at: d.deleted_at });
    render();
  });
  c.on("viewed", (v) => {
    if (v.viewer_id === peer && v.message_id > peerViewedUpTo) peerViewedUpTo = v.message_id;
    render();
  });
  c.on("typing", (t) => {
    if (t.sender_id !== peer) return;
    clearTimeout(typingTimer);
    $("typing").textContent = t.is_typing ? `${nameOf(peer)} is typing…` : "";
    // The "stopped" frame may never come (the peer's tab died): fade out on our own.
    if (t.is_typing) typingTimer = setTimeout(() => ($("typing").textContent = ""), TYPING_SHOWN_MS);
  });
  c.on("presence", (p) => {
    if (p.user_id !== peer) return;
    const el = $("presence");
    el.dataset.online = String(p.online);
    const seen = p.last_seen ? ` · last seen ${new Date(p.last_seen).toLocaleTimeString()}` : "";
    $("presence-text").textContent = p.online ? "online" : `offline${seen}`;
    if (!p.online) $("typing").textContent = "";
  });
  c.on("error", (e) => {
    $("chat-error").textContent = `${e.code}: ${e.message}`;
    if (e.code === "forbidden") $("session").textContent = "access ended (1008): the chat stopped";
  });
  c.on("auth", (a) => {
    const until = a.expires_at ? `, valid until ${new Date(a.expires_at).toLocaleTimeString()}` : "";
    $("session").textContent = `token refreshed${until}`;
  });
}

function addMessages(list: Message[]): void {
  for (const m of list) {
    messages.set(m.id, m);
    if (m.client_id) outbox.delete(m.client_id);
    if (m.sender_id === me && m.viewed_at && m.id > peerViewedUpTo) peerViewedUpTo = m.id;
  }
}

function setMode(mode: { replyTo?: string; editing?: string }): void {
  replyTo = mode.replyTo;
  editing = mode.editing;
  const target = messages.get(replyTo ?? editing ?? "");
  $("mode").hidden = !target;
  $("mode-text").textContent = !target ? "" : `${editing ? "Editing" : "Replying to"}: ${target.text ?? ""}`;
  $("send").textContent = editing ? "Save" : "Send";
  if (editing && target) $<HTMLInputElement>("text").value = target.text ?? "";
  $("text").focus();
}

function act(e: Event): void {
  const button = (e.target as HTMLElement).closest<HTMLElement>("button[data-action]");
  const id = button?.closest<HTMLElement>("li")?.dataset.id;
  if (!client || !button || !id) return;
  const action = button.dataset.action;
  if (action === "reply") setMode({ replyTo: id });
  else if (action === "edit") setMode({ editing: id });
  else if (action === "delete") {
    client.delete(id).catch((err: Error) => {
      $("chat-error").textContent = `cannot delete: ${err.message}`;
    });
  }
}

function render(scrollToEnd = false): void {
  const scroller = $("scroller");
  const nearEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const list = $("messages");
  const items: HTMLLIElement[] = [];
  const ids = [...messages.keys()].sort();
  for (const id of ids) {
    const m = messages.get(id)!;
    const mine = m.sender_id === me;
    const state = mine ? (id <= peerViewedUpTo ? "viewed" : "sent") : "received";
    const at = new Date(m.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    items.push(messageBubble(m, mine, state, at));
  }
  for (const [clientId, o] of outbox) {
    const li = bubble(
      o.text,
      true,
      o.failed ? "failed" : "pending",
      o.failed ?? "sending…",
      undefined,
      o.attachments,
    );
    li.dataset.clientId = clientId;
    items.push(li);
  }
  list.replaceChildren(...items);
  if (scrollToEnd || nearEnd) scroller.scrollTop = scroller.scrollHeight;
  markRead(ids);
}

/** Read-up-to: marking the newest message from the peer covers every earlier one. */
function markRead(sortedIds: string[]): void {
  if (!client || document.visibilityState !== "visible") return;
  for (let i = sortedIds.length - 1; i >= 0; i--) {
    const m = messages.get(sortedIds[i]!)!;
    if (m.sender_id === peer) {
      if (!m.viewed_at) client.markViewed(m.id);
      return;
    }
  }
}

async function loadOlder(): Promise<void> {
  const button = $<HTMLButtonElement>("older");
  if (!client || !oldestId || button.hidden || button.disabled) return;
  button.disabled = true;
  const scroller = $("scroller");
  const fromEnd = scroller.scrollHeight - scroller.scrollTop;
  try {
    const page = await client.history({ before: oldestId, limit: PAGE });
    addMessages(page);
    if (page[0]) oldestId = page[0].id;
    button.hidden = page.length < PAGE;
    render();
    scroller.scrollTop = scroller.scrollHeight - fromEnd; // keep the reader's place
  } finally {
    button.disabled = false;
  }
}

function send(e: Event): void {
  e.preventDefault();
  const input = $<HTMLInputElement>("text");
  const text = input.value.trim();
  const ready = staging.done();
  if (!client || (!text && ready.length === 0) || staging.busy()) return;
  input.value = "";
  if (editing) {
    const id = editing;
    setMode({});
    client.edit(id, text).catch((err: Error) => {
      $("chat-error").textContent = `cannot edit: ${err.message}`;
    });
    return;
  }
  const reply = replyTo;
  setMode({});
  staging.clear();
  const clientId = newClientId();
  const attachments = ready.map(({ id, name, size, mime }) => ({ id, name, size, mime }));
  outbox.set(clientId, { text, attachments });
  render(true);
  client.send(text, { clientId, attachments, replyTo: reply }).then(
    () => render(),
    (err: Error) => {
      outbox.set(clientId, { text, attachments, failed: err.message });
      render();
    },
  );
}

$("open").addEventListener("click", () => void openChat());
$("older").addEventListener("click", () => void loadOlder());
$("scroller").addEventListener("scroll", () => {
  if ($("scroller").scrollTop < 20) void loadOlder();
});
$("composer").addEventListener("submit", send);
$("messages").addEventListener("click", act);
$("mode-cancel").addEventListener("click", () => {
  setMode({});
  $<HTMLInputElement>("text").value = "";
});
$("text").addEventListener("input", () => client?.typing());
$("attach").addEventListener("click", () => $<HTMLInputElement>("file").click());
$("file").addEventListener("change", () => {
  const input = $<HTMLInputElement>("file");
  staging.stage(input.files);
  input.value = "";
});
const chatCard = $("chat");
chatCard.addEventListener("dragover", (e) => {
  e.preventDefault();
  chatCard.classList.add("dragging");
});
chatCard.addEventListener("dragleave", () => chatCard.classList.remove("dragging"));
chatCard.addEventListener("drop", (e) => {
  e.preventDefault();
  chatCard.classList.remove("dragging");
  staging.stage(e.dataTransfer?.files);
});
// A screenshot pasted from the clipboard is an attachment too.
$("text").addEventListener("paste", (e) => {
  const files = Array.from(e.clipboardData?.files ?? []);
  if (files.length > 0) {
    e.preventDefault();
    staging.stage(files);
  }
});
document.addEventListener("visibilitychange", () => render());
void loadDirectory();
