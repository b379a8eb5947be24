import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";
import { newClientId } from "./client-id.ts";
import { Emitter } from "./emitter.ts";
import {
  type ChatClientOptions,
  type ChatEvents,
  type ConnectionState,
  type Pending,
  RETRYABLE,
  socketUrl,
  ZERO_ID,
} from "./options.ts";
import { ChatRest } from "./rest.ts";
import { SeenIds } from "./seen.ts";
import type {
  Ack,
  Attachment,
  AttachmentRef,
  ErrorFrame,
  Message,
  OutboundFrame,
  Page,
  Ready,
  TokenSource,
  UploadOptions,
} from "./types.ts";
import { ChatError } from "./types.ts";

export type { ChatClientOptions, ChatEvents, ConnectionState } from "./options.ts";

/**
 * One conversation over one WebSocket that survives restarts and network loss: reconnects with
 * backoff, resumes with `since=<last id>`, drops duplicates by message id, and keeps unacked
 * messages to resend with the same client_id (the server stores each client_id once).
 */

export class ChatClient extends Emitter<ChatEvents> {
  readonly rest: ChatRest;
  private readonly WS: typeof WebSocket;
  private tokenSource: TokenSource;
  private readonly backoff: BackoffOptions;
  private ws: WebSocket | null = null;
  private stateNow: ConnectionState = "idle";
  private attempt = 0;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private heartbeatTimer?: ReturnType<typeof setInterval>;
  private lastFrameAt = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly seen = new SeenIds(5000);
  private lastId: string | undefined;
  private viewedWanted: string | undefined;
  private viewedSent: string | undefined;
  private typingOn = false;
  private typingTimer?: ReturnType<typeof setTimeout>;
  private readyFrame: Ready | undefined;
  private waiters: Array<{ resolve: (r: Ready) => void; reject: (e: ChatError) => void }> = [];
  private readonly onOnline = () => {
    if (this.stateNow === "reconnecting") this.dialSoon(0);
  };

  constructor(private readonly opts: ChatClientOptions) {
    super();
    this.rest = new ChatRest({ url: opts.url, token: opts.token, fetch: opts.fetch });
    this.WS = opts.WebSocket ?? globalThis.WebSocket;
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.lastId = opts.since;
    this.tokenSource = opts.token;
  }

  get state(): ConnectionState {
    return this.stateNow;
  }

  /** Set once the first `ready` frame arrived. */
  get conversationId(): string | undefined {
    return this.readyFrame?.conversation_id;
  }

  get ready(): Ready | undefined {
    return this.readyFrame;
  }

  /** The newest message id seen: the `since` of the next reconnect. */
  get lastMessageId(): string | undefined {
    return this.lastId;
  }

  /** Messages sent but not yet acked (queued offline or in flight). */
  get unacked(): number {
    return this.pending.size;
  }

  /** Opens the connection (once); resolves on the next `ready`, rejects on a fatal error. */
  connect(): Promise<Ready> {
    if (this.stateNow === "closed") return Promise.reject(new ChatError("closed", "client is closed"));
    const p = new Promise<Ready>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.stateNow === "idle") {
      if (typeof addEventListener === "function" && typeof window !== "undefined") {
        addEventListener("online", this.onOnline);
      }
      void this.dial();
    } else if (this.stateNow === "open" && this.readyFrame) {
      this.settleWaiters(this.readyFrame);
    }
    return p;
  }

  /**
   * Sends a message; resolves with the server's ack once it is durable. Works offline too: the
   * message is queued and sent (once) when the connection is back.
   */
  send(
    text: string,
    opts: { clientId?: string; attachments?: ReadonlyArray<string | AttachmentRef | Attachment> } = {},
  ): Promise<Ack> {
    if (this.stateNow === "closed") return Promise.reject(new ChatError("closed", "client is closed"));
    const attachments = (opts.attachments ?? []).map((a) => (typeof a === "string" ? a : a.id));
    if (text.trim() === "" && attachments.length === 0) {
      return Promise.reject(new ChatError("empty", "a message needs text or an attachment"));
    }
    this.stopTyping();
    const clientId = opts.clientId ?? newClientId();
    return new Promise<Ack>((resolve, reject) => {
      const entry: Pending = { clientId, text, attachments, resolve, reject, retries: 0 };
      this.pending.set(clientId, entry);
      this.transmit(entry);
    });
  }

  /**
   * Uploads a file into this conversation (after `ready`); resolves to the attachment to pass to
   * `send(text, { attachments })`. An upload nobody sends is removed by the server after a day.
   */
  async upload(file: Blob | ArrayBuffer | Uint8Array, opts: UploadOptions = {}): Promise<Attachment> {
    const id = this.conversationId ?? (await this.connect()).conversation_id;
    return this.rest.upload(id, file, opts);
  }

  /** An attachment's bytes, fetched with the token (an <img> cannot send one). */
  download(id: string): Promise<Blob> {
    return this.rest.download(id);
  }

  /** Call on every keystroke: sends `is_typing: true` once, and `false` after a pause. */
  typing(): void {
    clearTimeout(this.typingTimer);
    if (!this.typingOn) {
      this.typingOn = true;
      this.frame({ type: "typing", is_typing: true });
    }
    this.typingTimer = setTimeout(() => this.stopTyping(), this.opts.typingIdleMs ?? 3000);
  }

  stopTyping(): void {
    clearTimeout(this.typingTimer);
    if (!this.typingOn) return;
    this.typingOn = false;
    this.frame({ type: "typing", is_typing: false });
  }

  /** Marks this message and every earlier one from the other participant as read. */
  markViewed(messageId: string): void {
    if (this.viewedWanted !== undefined && messageId <= this.viewedWanted) return;
    this.viewedWanted = messageId;
    this.flushViewed();
  }

  /** Presents a fresh token on the open connection, and uses it for later reconnects. */
  setToken(token: string): void {
    this.tokenSource = token;
    this.rest.token = token;
    this.frame({ type: "auth", token });
  }

  /**
   * A page of history for this conversation (after `ready`). Its ids count as seen, so the same
   * message arriving live later is not emitted twice; merge pages and events by `id`.
   */
  async history(page: Page = {}): Promise<Message[]> {
    const id = this.conversationId ?? (await this.connect()).conversation_id;
    const messages = await this.rest.messages(id, page);
    for (const m of messages) this.seen.add(m.id);
    return messages;
  }

  /** Closes for good: pending sends are rejected, no reconnect. */
  close(): void {
    if (this.stateNow === "closed") return;
    this.stopTyping();
    this.setState({ state: "closed", attempt: this.attempt });
    clearTimeout(this.reconnectTimer);
    if (typeof removeEventListener === "function") removeEventListener("online", this.onOnline);
    const ws = this.detach();
    ws?.close(1000, "client closed");
    this.failAll(new ChatError("closed", "client closed"));
  }

  // --- connection lifecycle ---

  private async dial(): Promise<void> {
    if (this.stateNow === "closed") return;
    this.setState({ state: this.attempt === 0 ? "connecting" : "reconnecting", attempt: this.attempt });
    let token: string;
    try {
      token = await this.token();
      // No resume point yet: take the newest stored id, so whatever is sent between now and
      // the socket's subscription is replayed rather than lost.
      if (this.lastId === undefined) this.lastId = await this.latestStoredId();
    } catch (err) {
      this.dialFailed(err);
      return;
    }
    // close() may have run while we awaited the token.
    if ((this.stateNow as ConnectionState) === "closed") return;
    const url = socketUrl(this.opts, this.lastId ?? ZERO_ID, token);
    const ws = this.opts.tokenIn === "query" ? new this.WS(url) : new this.WS(url, ["bearer", token]);
    this.ws = ws;
    ws.onmessage = (e) => this.onFrame(ws, e.data);
    ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
  }

  private async latestStoredId(): Promise<string> {
    const [conversation] = await this.rest.conversations({
      lessonId: this.opts.lessonId,
      studentId: this.opts.studentId,
    });
    if (!conversation) return ZERO_ID; // created by this connect: empty so far
    const [latest] = await this.rest.messages(conversation.id, { limit: 1 });
    return latest?.id ?? ZERO_ID;
  }

  private dialFailed(err: unknown): void {
    const e = err instanceof ChatError ? err : new ChatError("network", String(err));
    if (e.status === 401 || e.status === 403) this.fatal(e);
    else this.scheduleReconnect();
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    const wasReady = this.stateNow === "open";
    this.detach();
    if (this.stateNow === "closed") return;
    // 1008: the server refused this user's token or identity mid-connection; retrying won't help.
    if (code === 1008) {
      this.fatal(new ChatError("forbidden", reason || "policy violation"));
      return;
    }
    if (!wasReady) {
      // A refused upgrade looks like 1006 in a browser; ask REST whether the token is the reason.
      void this.rest.conversations({ lessonId: this.opts.lessonId }).then(
        () => this.scheduleReconnect(code, reason),
        (err) => this.dialFailed(err),
      );
      return;
    }
    this.scheduleReconnect(code, reason);
  }

  private scheduleReconnect(code?: number, reason?: string): void {
    if (this.stateNow === "closed") return;
    const delayMs = backoffDelay(this.attempt, this.backoff);
    this.attempt++;
    this.setState({ state: "reconnecting", attempt: this.attempt, delayMs, code, reason });
    this.dialSoon(delayMs);
  }

  private dialSoon(delayMs: number): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.dial(), delayMs);
  }

  private fatal(err: ChatError): void {
    this.emit("error", err);
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.close();
  }

  /** Forgets the current socket and its timers; returns it so the caller may close it. */
  private detach(): WebSocket | null {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.heartbeatTimer);
    for (const p of this.pending.values()) clearTimeout(p.timer);
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
    }
    return ws;
  }

  private startHeartbeat(ws: WebSocket): void {
    const every = this.opts.heartbeatMs ?? 25_000;
    if (every <= 0) return;
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > 2 * every) {
        // A half-open connection never fires `close`; stop waiting for it and redial.
        this.detach();
        ws.close(4000, "heartbeat timeout");
        this.scheduleReconnect(4000, "heartbeat timeout");
        return;
      }
      this.frame({ type: "ping" });
    }, every);
  }

  // --- inbound frames ---

  private onFrame(ws: WebSocket, data: unknown): void {
    if (ws !== this.ws || typeof data !== "string") return;
    this.lastFrameAt = Date.now();
    let f: OutboundFrame;
    try {
      f = JSON.parse(data) as OutboundFrame;
    } catch {
      return;
    }
    switch (f.type) {
      case "ready": {
        const { type: _, ...ready } = f;
        this.readyFrame = ready;
        this.attempt = 0;
        this.setState({ state: "open", attempt: 0 });
        this.startHeartbeat(ws);
        this.emit("ready", ready);
        this.settleWaiters(ready);
        for (const p of this.pending.values()) this.transmit(p);
        this.viewedSent = undefined;
        this.flushViewed();
        return;
      }
      case "message": {
        const { type: _, ...message } = f;
        if (this.seen.has(message.id)) return;
        this.seen.add(message.id);
        if (this.lastId === undefined || message.id > this.lastId) this.lastId = message.id;
        this.emit("message", message);
        return;
      }
      case "ack":
        this.onAck(f);
        return;
      case "typing":
      case "viewed":
      case "presence": {
        const { type, ...rest } = f;
        this.emit(type, rest as never);
        return;
      }
      case "error":
        this.onError(f);
        return;
      default:
        return; // auth_ok, pong: liveness only
    }
  }

  private onAck(ack: Ack): void {
    const p = ack.client_id === undefined ? undefined : this.pending.get(ack.client_id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(p.clientId);
    const { type: _, ...rest } = ack as Ack & { type?: string };
    p.resolve(rest);
  }

  private onError(e: ErrorFrame): void {
    const p = e.ref === undefined ? undefined : this.pending.get(e.ref);
    if (!p) {
      this.emit("error", new ChatError(e.code, e.message, undefined, e.ref));
      return;
    }
    clearTimeout(p.timer);
    if (RETRYABLE.has(e.code)) {
      p.timer = setTimeout(() => this.transmit(p), backoffDelay(p.retries++, this.backoff));
      return;
    }
    this.pending.delete(p.clientId);
    p.reject(new ChatError(e.code, e.message, undefined, e.ref));
  }

  // --- outbound frames ---

  private transmit(p: Pending): void {
    if (!this.isOpen()) return; // sent on the next `ready`
    clearTimeout(p.timer);
    this.frame({
      type: "message",
      ...(p.text.trim() !== "" ? { text: p.text } : {}),
      client_id: p.clientId,
      ...(p.attachments.length > 0 ? { attachments: p.attachments } : {}),
    });
    // A frame the server dropped (e.g. a per-connection flood limit) gets no ack and no ref.
    p.timer = setTimeout(() => this.transmit(p), this.opts.ackTimeoutMs ?? 10_000);
  }

  private flushViewed(): void {
    const id = this.viewedWanted;
    if (id === undefined || id === this.viewedSent || !this.isOpen()) return;
    this.viewedSent = id;
    this.frame({ type: "viewed", message_id: id });
  }

  private frame(f: object): void {
    if (this.isOpen()) this.ws!.send(JSON.stringify(f));
  }

  private isOpen(): boolean {
    return this.stateNow === "open" && this.ws !== null && this.ws.readyState === 1;
  }

  // --- bookkeeping ---

  private async token(): Promise<string> {
    const t = this.tokenSource;
    return typeof t === "function" ? await t() : t;
  }

  private setState(s: ChatEvents["state"]): void {
    this.stateNow = s.state;
    this.emit("state", s);
  }

  private settleWaiters(ready: Ready): void {
    for (const w of this.waiters.splice(0)) w.resolve(ready);
  }

  private failAll(err: ChatError): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
