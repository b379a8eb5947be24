import { type Attachment, type ChatClient, newClientId } from "../client/index.ts";

/**
 * Files chosen for the next message. Each is uploaded at once and shown as a chip with its
 * progress; the message goes out with the finished ones, and waits while any is still running.
 */

export interface StagingPage {
  /** Asked at each use, not kept: opening another chat replaces the client. */
  client(): ChatClient | null;
  chips(): HTMLElement;
  sendButton(): HTMLButtonElement;
}

interface Staged {
  key: string;
  name: string;
  done?: Attachment;
  failed?: string;
  sent: number;
  total: number;
}

export function createStaging(page: StagingPage) {
  /** In the order chosen. */
  const staged: Staged[] = [];
  const busy = () => staged.some((s) => !s.done && !s.failed);

  function render(): void {
    page.chips().replaceChildren(
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
    page.sendButton().disabled = busy();
  }

  function stage(list: FileList | File[] | undefined | null): void {
    const client = page.client();
    if (!client || !list) return;
    for (const file of Array.from(list)) {
      const entry: Staged = { key: newClientId(), name: file.name, sent: 0, total: file.size };
      staged.push(entry);
      client
        .upload(file, {
          name: file.name,
          onProgress: (sent, total) => {
            entry.sent = sent;
            entry.total = total;
            render();
          },
        })
        .then(
          (a) => {
            entry.done = a;
            render();
          },
          (err: Error) => {
            entry.failed = err.message;
            render();
          },
        );
    }
    render();
  }

  return {
    stage,
    /** The finished uploads, in the order chosen. */
    done: (): Attachment[] => staged.filter((s) => s.done).map((s) => s.done!),
    /** An upload is still running: the message waits for it. */
    busy,
    /** After a send: the chips go. */
    clear(): void {
      staged.length = 0;
      render();
    },
  };
}
