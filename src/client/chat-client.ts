import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";
import { Emitter } from "./emitter.ts";
import { Heartbeat } from "./heartbeat.ts";
import {
  type ChatClientOptions,
  type ChatEvents,
  type ConnectionState,
  socketUrl,
  ZERO_ID,
} from "./options.ts";
import { messageFrame, Outgoing, type SendOptions } from "./outgoing.ts";
import { Redial } from "./redial.ts";
import { ChatRest } from "./rest.ts";
import { SeenIds } from "./seen.ts";
import { Signals } from "./signals.ts";
import { TokenRefresher } from "./token-refresh.ts";
import type {
  Ack,
  Attachment,
  ErrorFrame,
  Message,
  OutboundFrame,
  Page,
  Ready,
  TokenSource,
  UploadOptions,
} from "./types.ts";
import { ChatError } from "./types.ts";
import { Waiters } from "./waiters.ts";

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
  private ws: WebSocket | null = null;
  private stateNow: ConnectionState = "idle";
  private readonly redial: Redial;
  private readonly heartbeat: Heartbeat;
  private readonly seen = new SeenIds(5000);
  private readonly outgoing: Outgoing;
  private lastId: string | undefined;
  private readonly signals: Signals;
  private readyFrame: Ready | undefined;
  private readonly waiters = new Waiters<Ready>();
  private dialToken = "";
  private readonly refresher = new TokenRefresher({
    fetchToken: () => (typeof this.tokenSource === "function" ? this.token() : undefined),
    present: (token) => this.frame({ type: "auth", token }),
  });

  constructor(private readonly opts: ChatClientOptions) {
    super();
    this.rest = new ChatRest({ url: opts.url, token: opts.token, fetch: opts.fetch });
    this.WS = opts.WebSocket ?? globalThis.WebSocket;
    const backoff: BackoffOptions = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.redial = new Redial({
      backoff,
      dial: () => void this.dial(),
      waiting: () => this.stateNow === "reconnecting",
    });
    this.lastId = opts.since;
    this.tokenSource = opts.token;
    this.outgoing = new Outgoing({
      send: (f) => {
        if (!this.isOpen()) return false;
        this.frame(f);
        return true;
      },
      ackTimeoutMs: opts.ackTimeoutMs ?? 10_000,
      retryDelayMs: (n) => backoffDelay(n, backoff),
    });
    this.signals = new Signals({
      frame: (f) => this.frame(f),
      isOpen: () => this.isOpen(),
      typingIdleMs: opts.typingIdleMs ?? 3000,
    });
    this.heartbeat = new Heartbeat(opts.heartbeatMs ?? 25_000);
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

  /** Messages, edits and deletes sent but not yet acked (queued offline or in flight). */
  get unacked(): number {
    return this.outgoing.size;
  }

  /** Opens the connection (once); resolves on the next `ready`, rejects on a fatal error. */
  connect(): Promise<Ready> {
    if (this.stateNow === "closed") return Promise.reject(new ChatError("closed", "client is closed"));
    const p = this.waiters.wait();
    if (this.stateNow === "idle") {
      this.redial.listenOnline();
      void this.dial();
    } else if (this.stateNow === "open" && this.readyFrame) {
      this.waiters.resolveAll(this.readyFrame);
    }
    return p;
  }

  /**
   * Sends a message; resolves with the server's ack once it is durable. Works offline too: the
   * message is queued and sent (once) when the connection is back.
   */
  send(text: string, opts: SendOptions = {}): Promise<Ack> {
    if (this.stateNow === "closed") return Promise.reject(new ChatError("closed", "client is closed"));
    const frame = messageFrame(text, opts);
    if (!frame) return Promise.reject(new ChatError("empty", "a message needs text or an attachment"));
    this.stopTyping();
    return this.outgoing.request(frame, opts.clientId);
  }

  /** Replaces the text of one's own message; resolves on the server's ack (durable). */
  edit(messageId: string, text: string): Promise<Ack> {
    if (this.stateNow === "closed") return Promise.reject(new ChatError("closed", "client is closed"));
    return this.outgoing.request({ type: "edit", message_id: messageId, text });
  }

  /** Deletes one's own message (a mentor: any in the conversation); resolves on the ack. */
  delete(messageId: string): Promise<Ack> {
    if (this.stateNow === "closed") return Promise.reject(new ChatError("closed", "client is closed"));
    return this.outgoing.request({ type: "delete", message_id: messageId });
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
    this.signals.typing();
  }

  stopTyping(): void {
    this.signals.stopTyping();
  }

  /** Marks this message and every earlier one from the other participant as read. */
  markViewed(messageId: string): void {
    this.signals.markViewed(messageId);
  }

  /** Presents a fresh token on the open connection, and uses it for later reconnects. */
  setToken(token: string): void {
    this.refresher.stop();
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
    this.setState({ state: "closed", attempt: this.redial.attempt });
    this.redial.stop();
    const ws = this.detach();
    ws?.close(1000, "client closed");
    this.failAll(new ChatError("closed", "client closed"));
  }

  private async dial(): Promise<void> {
    if (this.stateNow === "closed") return;
    const { attempt } = this.redial;
    this.setState({ state: attempt === 0 ? "connecting" : "reconnecting", attempt });
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
    this.dialToken = token;
    const url = socketUrl(this.opts, this.lastId ?? ZERO_ID, token);
    const ws = this.opts.tokenIn === "query" ? new this.WS(url) : new this.WS(url, ["bearer", token]);
    this.ws = ws;
    ws.onmessage = (e) => this.onFrame(ws, e.data);
    ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
  }

  private async latestStoredId(): Promise<string> {
    return (await this.rest.latestId(this.opts.lessonId, this.opts.studentId)) ?? ZERO_ID;
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
    // 4001: the token expired on an open socket; a fresh one from the source, and resume at once.
    if (code === 4001) this.redial.attempt = 0;
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
    const delayMs = this.redial.nextDelay();
    this.setState({ state: "reconnecting", attempt: this.redial.attempt, delayMs, code, reason });
    this.redial.soon(delayMs);
  }

  private fatal(err: ChatError): void {
    this.emit("error", err);
    this.waiters.rejectAll(err);
    this.close();
  }

  /** Forgets the current socket and its timers; returns it so the caller may close it. */
  private detach(): WebSocket | null {
    const ws = this.ws;
    this.ws = null;
    this.heartbeat.stop();
    this.outgoing.pause();
    this.refresher.stop();
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
    }
    return ws;
  }

  private startHeartbeat(ws: WebSocket): void {
    this.heartbeat.start(
      () => this.frame({ type: "ping" }),
      () => {
        this.detach();
        ws.close(4000, "heartbeat timeout");
        this.scheduleReconnect(4000, "heartbeat timeout");
      },
    );
  }

  private onFrame(ws: WebSocket, data: unknown): void {
    if (ws !== this.ws || typeof data !== "string") return;
    this.heartbeat.heard();
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
        this.redial.attempt = 0;
        this.setState({ state: "open", attempt: 0 });
        this.startHeartbeat(ws);
        if (typeof this.tokenSource === "function") this.refresher.schedule(this.dialToken);
        this.emit("ready", ready);
        this.waiters.resolveAll(ready);
        this.outgoing.resendAll();
        this.signals.reconnected();
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
        this.outgoing.ack(f);
        return;
      case "message_edited":
      case "message_deleted":
      case "typing":
      case "viewed":
      case "presence": {
        const { type, ...rest } = f;
        this.emit(type, rest as never);
        return;
      }
      case "error":
        if (f.code !== "token_expired") this.onError(f); // the 4001 close that follows redials
        return;
      case "auth_ok":
        this.emit("auth", { expires_at: f.expires_at });
        return;
      default:
        return; // pong: liveness only
    }
  }

  private onError(e: ErrorFrame): void {
    if (!this.outgoing.error(e)) this.emit("error", new ChatError(e.code, e.message, undefined, e.ref));
  }

  // --- outbound frames ---

  private frame(f: object): void {
    if (this.isOpen()) this.ws!.send(JSON.stringify(f));
  }

  private isOpen(): boolean {
    return this.stateNow === "open" && this.ws !== null && this.ws.readyState === 1;
  }

  private async token(): Promise<string> {
    const t = this.tokenSource;
    return typeof t === "function" ? await t() : t;
  }

  private setState(s: ChatEvents["state"]): void {
    this.stateNow = s.state;
    this.emit("state", s);
  }

  private failAll(err: ChatError): void {
    this.outgoing.failAll(err);
    this.waiters.rejectAll(err);
  }
}
