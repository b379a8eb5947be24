import {
  type Attachment,
  type AttachmentRef,
  ChatClient,
  type Message,
  newClientId,
  type Ready,
} from "../client/index.ts";

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
/** Uploads waiting for the next send, in the order chosen. */
const staged: Array<{
  key: string;
  name: string;
  done?: Attachment;
  failed?: string;
  sent: number;
  total: number;
}> = [];
/** Object URLs of image attachments, fetched once with the token (an <img> cannot send one). */
const thumbs = new Map<string, Promise<string>>();
let client: ChatClient | null = null;
let me = 0;
let peer = 0;
let peerViewedUpTo = "";
let oldestId: string | undefined;
let typingTimer: ReturnType<typeof setTimeout> | undefined;

const nameOf = (id: number) => names.get(id) ?? `user ${id}`;

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
    body: JSON.stringify({ user_id: userId }),
  });
  const body = (await res.json()) as { token?: string; error?: { message: string } };
  if (!res.ok || !body.token) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
  return body.token;
}

async function openChat(): Promise<void> {
  $("signin-error").textContent = "";
  const lessonId = Number($<HTMLInputElement>("lesson").value);
  const student = $<HTMLInputElement>("student").value.trim();
  let token: string;
  try {
    token = await tokenFor();
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
    token,
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
    $("me").textContent = `signed in as ${nameOf(me)}`;
    $("peer").textContent = `Lesson ${r.lesson_id} · ${nameOf(peer)}`;
    $("signin").hidden = true;
    $("chat").hidden = false;
  });
  c.on("message", (m) => {
    addMessages([m]);
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
  });
}

function addMessages(list: Message[]): void {
  for (const m of list) {
    messages.set(m.id, m);
    if (m.client_id) outbox.delete(m.client_id);
    if (m.sender_id === me && m.viewed_at && m.id > peerViewedUpTo) peerViewedUpTo = m.id;
  }
}

const INLINE_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function sizeText(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 * 1024
      ? `${(n / 1024).toFixed(0)} KB`
      : `${(n / 1048576).toFixed(1)} MB`;
}

function thumbUrl(id: string): Promise<string> {
  let p = thumbs.get(id);
  if (!p) {
    p = client!.download(id).then((b) => URL.createObjectURL(b));
    // A failure (e.g. 503 while another instance is still copying it) is retried on the next render.
    p.catch(() => thumbs.delete(id));
    thumbs.set(id, p);
  }
  return p;
}

function attachmentNode(a: AttachmentRef): HTMLElement {
  if (INLINE_IMAGES.has(a.mime) && client) {
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = a.name;
    img.dataset.attachmentId = a.id;
    void thumbUrl(a.id).then(
      (url) => {
        img.src = url;
      },
      () => {
        img.alt = `${a.name} (not available yet)`;
      },
    );
    return img;
  }
  const link = document.createElement("a");
  link.className = "file";
  link.href = "#";
  link.dataset.attachmentId = a.id;
  link.textContent = `📎 ${a.name} (${sizeText(a.size)})`;
  link.addEventListener("click", (e) => {
    e.preventDefault();
    void client?.download(a.id).then((b) => {
      const save = document.createElement("a");
      save.href = URL.createObjectURL(b);
      save.download = a.name;
      save.click();
      setTimeout(() => URL.revokeObjectURL(save.href), 10_000);
    });
  });
  return link;
}

function bubble(
  text: string,
  mine: boolean,
  state: string,
  at: string,
  id?: string,
  attachments: AttachmentRef[] = [],
): HTMLLIElement {
  const li = document.createElement("li");
  li.className = mine ? "msg mine" : "msg";
  li.dataset.state = state;
  if (id) li.dataset.id = id;
  for (const a of attachments) li.append(attachmentNode(a));
  if (text) li.append(text);
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = at;
  if (mine) {
    const tick = document.createElement("span");
    tick.className = "tick";
    tick.textContent =
      state === "pending" ? "🕓" : state === "failed" ? "⚠" : state === "viewed" ? "✓✓" : "✓";
    tick.title = state;
    meta.append(tick);
  }
  li.append(meta);
  return li;
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
    items.push(bubble(m.text, mine, state, at, id, m.attachments ?? []));
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

function renderStaged(): void {
  $("pending").replaceChildren(
    ...staged.map((s) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.state = s.failed ? "failed" : s.done ? "done" : "uploading";
      chip.textContent = s.failed
        ? `${s.name}: ${s.failed}`
        : s.done
          ? `📎 ${s.name}`
          : `${s.name} ${s.total ? Math.floor((100 * s.sent) / s.total) : 0}%`;
      return chip;
    }),
  );
  $<HTMLButtonElement>("send").disabled = staged.some((s) => !s.done && !s.failed);
}

function stage(list: FileList | File[] | undefined | null): void {
  if (!client || !list) return;
  for (const file of Array.from(list)) {
    const entry = {
      key: newClientId(),
      name: file.name,
      sent: 0,
      total: file.size,
    } as (typeof staged)[number];
    staged.push(entry);
    client
      .upload(file, {
        name: file.name,
        onProgress: (sent, total) => {
          entry.sent = sent;
          entry.total = total;
          renderStaged();
        },
      })
      .then(
        (a) => {
          entry.done = a;
          renderStaged();
        },
        (err: Error) => {
          entry.failed = err.message;
          renderStaged();
        },
      );
  }
  renderStaged();
}

function send(e: Event): void {
  e.preventDefault();
  const input = $<HTMLInputElement>("text");
  const text = input.value.trim();
  const ready = staged.filter((s) => s.done).map((s) => s.done!);
  if (!client || (!text && ready.length === 0) || staged.some((s) => !s.done && !s.failed)) return;
  input.value = "";
  staged.length = 0;
  renderStaged();
  const clientId = newClientId();
  const attachments = ready.map(({ id, name, size, mime }) => ({ id, name, size, mime }));
  outbox.set(clientId, { text, attachments });
  render(true);
  client.send(text, { clientId, attachments }).then(
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
$("text").addEventListener("input", () => client?.typing());
$("attach").addEventListener("click", () => $<HTMLInputElement>("file").click());
$("file").addEventListener("change", () => {
  const input = $<HTMLInputElement>("file");
  stage(input.files);
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
  stage(e.dataTransfer?.files);
});
// A screenshot pasted from the clipboard is an attachment too.
$("text").addEventListener("paste", (e) => {
  const files = Array.from(e.clipboardData?.files ?? []);
  if (files.length > 0) {
    e.preventDefault();
    stage(files);
  }
});
document.addEventListener("visibilitychange", () => render());
void loadDirectory();
