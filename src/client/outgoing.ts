import { newClientId } from "./client-id.ts";
import { RETRYABLE } from "./options.ts";
import type { Ack, Attachment, AttachmentRef, ErrorFrame } from "./types.ts";
import { ChatError } from "./types.ts";

/**
 * Messages, edits and deletes in flight: each carries a client_id, is sent again on every
 * `ready` and after an ack timeout until its ack or a final error arrives. The server stores a
 * client_id once and treats a resent change as a duplicate, so each is applied once however
 * often it travels. Works offline: a frame waits for the next `ready`.
 */

export type OutgoingFrame =
  | { type: "message"; text?: string; reply_to?: string; attachments?: string[] }
  | { type: "edit"; message_id: string; text: string }
  | { type: "delete"; message_id: string };

export interface SendOptions {
  clientId?: string;
  replyTo?: string;
  attachments?: ReadonlyArray<string | AttachmentRef | Attachment>;
}

/** The frame `send()` makes; none for a message with neither text nor an attachment. */
export function messageFrame(text: string, opts: SendOptions): OutgoingFrame | undefined {
  const attachments = (opts.attachments ?? []).map((a) => (typeof a === "string" ? a : a.id));
  if (text.trim() === "" && attachments.length === 0) return undefined;
  return {
    type: "message" as const,
    ...(text.trim() !== "" ? { text } : {}),
    ...(opts.replyTo ? { reply_to: opts.replyTo } : {}),
    ...(attachments.length > 0 ? { attachments } : {}),
  };
}

interface PendingFrame {
  frame: OutgoingFrame & { client_id: string };
  resolve: (ack: Ack) => void;
  reject: (err: ChatError) => void;
  retries: number;
  timer?: ReturnType<typeof setTimeout>;
}

export interface OutgoingIo {
  /** Sends when the socket is open; false otherwise (the change waits for the next `ready`). */
  send(frame: object): boolean;
  ackTimeoutMs: number;
  retryDelayMs(attempt: number): number;
}

export class Outgoing {
  private readonly pending = new Map<string, PendingFrame>();

  constructor(private readonly io: OutgoingIo) {}

  request(frame: OutgoingFrame, client_id = newClientId()): Promise<Ack> {
    return new Promise<Ack>((resolve, reject) => {
      const p: PendingFrame = { frame: { ...frame, client_id }, resolve, reject, retries: 0 };
      this.pending.set(client_id, p);
      this.transmit(p);
    });
  }

  /** After a (re)connect: everything not yet acked goes again. */
  resendAll(): void {
    for (const p of this.pending.values()) this.transmit(p);
  }

  /** Resolves the frame this ack is for, if it is one of ours. */
  ack(ack: Ack & { type?: string }): void {
    const p = ack.client_id === undefined ? undefined : this.pending.get(ack.client_id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(p.frame.client_id);
    const { type: _, ...rest } = ack;
    p.resolve(rest);
  }

  /** True when the error was for a pending frame: retried when worth it, else the promise rejects. */
  error(e: ErrorFrame): boolean {
    const p = e.ref === undefined ? undefined : this.pending.get(e.ref);
    if (!p) return false;
    clearTimeout(p.timer);
    if (RETRYABLE.has(e.code)) {
      p.timer = setTimeout(() => this.transmit(p), this.io.retryDelayMs(p.retries++));
      return true;
    }
    this.pending.delete(p.frame.client_id);
    p.reject(new ChatError(e.code, e.message, undefined, e.ref));
    return true;
  }

  /** Stops timers while disconnected; `resendAll` starts them again. */
  pause(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
  }

  failAll(err: ChatError): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  get size(): number {
    return this.pending.size;
  }

  private transmit(p: PendingFrame): void {
    clearTimeout(p.timer);
    if (!this.io.send(p.frame)) return;
    p.timer = setTimeout(() => this.transmit(p), this.io.ackTimeoutMs);
  }
}
