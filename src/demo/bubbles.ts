import type { AttachmentRef, ChatClient, Message } from "../client/index.ts";

/**
 * The demo page's message bubbles: text, attachments (images inline, files as download links),
 * the quoted message, edited/deleted marks, the delivery tick and the actions a reader may take.
 */

export interface BubblePage {
  /** Asked at each use, not kept: opening another chat replaces the client. */
  client(): ChatClient | null;
  /** Every message on the page, for the quote of a reply. */
  messages: ReadonlyMap<string, Message>;
  iAmMentor(): boolean;
}

const INLINE_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function sizeText(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 * 1024
      ? `${(n / 1024).toFixed(0)} KB`
      : `${(n / 1048576).toFixed(1)} MB`;
}

const el = (tag: string, className: string, text = "") => {
  const e = document.createElement(tag);
  e.className = className;
  e.textContent = text;
  return e;
};

export function createBubbles(page: BubblePage) {
  /** Object URLs of image attachments, fetched once with the token (an <img> cannot send one). */
  const thumbs = new Map<string, Promise<string>>();

  function thumbUrl(id: string): Promise<string> {
    let p = thumbs.get(id);
    if (!p) {
      p = page
        .client()!
        .download(id)
        .then((b) => URL.createObjectURL(b));
      // A failure (e.g. 503 while another instance is still copying it) is retried on the next render.
      p.catch(() => thumbs.delete(id));
      thumbs.set(id, p);
    }
    return p;
  }

  function attachmentNode(a: AttachmentRef): HTMLElement {
    if (INLINE_IMAGES.has(a.mime) && page.client()) {
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
      void page
        .client()
        ?.download(a.id)
        .then((b) => {
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

  /** A stored message's bubble: its quote, the edited/deleted marks, and what the reader may do. */
  function messageBubble(m: Message, mine: boolean, state: string, at: string): HTMLLIElement {
    const li = m.deleted
      ? bubble("This message was deleted", mine, state, at, m.id, [])
      : bubble(m.text ?? "", mine, state, at, m.id, m.attachments ?? []);
    if (m.deleted) li.dataset.deleted = "true";
    if (m.reply_to) {
      const original = page.messages.get(m.reply_to);
      const quoted = !original
        ? "an earlier message"
        : original.deleted
          ? "a deleted message"
          : original.text;
      li.insertBefore(el("blockquote", "quote", quoted ?? ""), li.querySelector(".meta"));
    }
    const meta = li.querySelector(".meta")!;
    if (m.edited_at && !m.deleted) meta.prepend(el("span", "mark edited", "edited · "));
    if (m.deleted) return li;
    const actions = el("span", "actions");
    actions.append(el("button", "act", "Reply"));
    (actions.lastChild as HTMLElement).dataset.action = "reply";
    if (mine) {
      actions.append(el("button", "act", "Edit"));
      (actions.lastChild as HTMLElement).dataset.action = "edit";
    }
    if (mine || page.iAmMentor()) {
      actions.append(el("button", "act", "Delete"));
      (actions.lastChild as HTMLElement).dataset.action = "delete";
    }
    li.append(actions);
    return li;
  }

  return { bubble, messageBubble };
}
