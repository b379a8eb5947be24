/**
 * What a client tells the other side beside messages: that it is typing (sent once, and its end
 * after a pause) and how far it has read (only the newest mark, once per connection). Neither is
 * queued: a signal made while offline is dropped, except the read mark, which goes out on `ready`.
 */

export interface SignalsIo {
  /** Sends on the open socket; does nothing otherwise. */
  frame(f: object): void;
  isOpen(): boolean;
  typingIdleMs: number;
}

export class Signals {
  private typingOn = false;
  private typingTimer?: ReturnType<typeof setTimeout>;
  private viewedWanted: string | undefined;
  private viewedSent: string | undefined;

  constructor(private readonly io: SignalsIo) {}

  typing(): void {
    clearTimeout(this.typingTimer);
    if (!this.typingOn) {
      this.typingOn = true;
      this.io.frame({ type: "typing", is_typing: true });
    }
    this.typingTimer = setTimeout(() => this.stopTyping(), this.io.typingIdleMs);
  }

  stopTyping(): void {
    clearTimeout(this.typingTimer);
    if (!this.typingOn) return;
    this.typingOn = false;
    this.io.frame({ type: "typing", is_typing: false });
  }

  markViewed(messageId: string): void {
    if (this.viewedWanted !== undefined && messageId <= this.viewedWanted) return;
    this.viewedWanted = messageId;
    this.flushViewed();
  }

  /** A new connection: the mark may not have reached the server before the old one dropped. */
  reconnected(): void {
    this.viewedSent = undefined;
    this.flushViewed();
  }

  private flushViewed(): void {
    const id = this.viewedWanted;
    if (id === undefined || id === this.viewedSent || !this.io.isOpen()) return;
    this.viewedSent = id;
    this.io.frame({ type: "viewed", message_id: id });
  }
}
