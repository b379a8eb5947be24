import type {
  Attachment,
  Conversation,
  Message,
  Page,
  PresenceStatus,
  TokenSource,
  UploadOptions,
} from "./types.ts";
import { ChatError } from "./types.ts";

/** The REST API with a bearer token: the caller's conversations, history pages, presence. */

export interface RestOptions {
  /** The service's base URL, e.g. `https://chat.example.com`. */
  url: string;
  token: TokenSource;
  fetch?: typeof fetch;
}

export class ChatRest {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  /** Replace it when the app refreshes its token. */
  token: TokenSource;

  constructor(opts: RestOptions) {
    this.base = opts.url.replace(/\/+$/, "");
    this.token = opts.token;
    // Bound: a bare `fetch` stored on an object throws "Illegal invocation" in browsers.
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.usesGlobalFetch = opts.fetch === undefined;
  }

  /** The caller's conversations, newest activity first; filters narrow. */
  conversations(filter: { lessonId?: number; mentorId?: number; studentId?: number } = {}) {
    return this.get<Conversation[]>("/conversations", {
      lesson_id: filter.lessonId,
      mentor_id: filter.mentorId,
      student_id: filter.studentId,
    });
  }

  conversation(id: string) {
    return this.get<Conversation>(`/conversations/${encodeURIComponent(id)}`, {});
  }

  /** One page of history in time order; with no cursor, the latest page. */
  messages(conversationId: string, page: Page = {}) {
    return this.get<Message[]>("/messages", {
      conversation_id: conversationId,
      before: page.before,
      after: page.after,
      limit: page.limit,
    });
  }

  presence(userId: number) {
    return this.get<PresenceStatus>("/presence", { user_id: userId });
  }

  /**
   * Uploads a file into a conversation; resolves to the attachment to pass to `send`. In
   * browsers it goes through XMLHttpRequest, the one API that reports upload progress; elsewhere
   * through a streamed fetch whose progress is what has been handed to the socket.
   */
  async upload(conversationId: string, data: Blob | ArrayBuffer | Uint8Array, opts: UploadOptions = {}) {
    const blob = data instanceof Blob ? data : new Blob([data as BlobPart]);
    const name = opts.name ?? (typeof File !== "undefined" && data instanceof File ? data.name : "file");
    const url = `${this.base}/attachments?conversation_id=${encodeURIComponent(conversationId)}`;
    const headers: Record<string, string> = {
      Authorization: `Bearer ${await this.currentToken()}`,
      Accept: "application/json",
      // The server decides the type from the bytes; this is only the client's guess.
      "Content-Type": blob.type || "application/octet-stream",
      "X-Filename": encodeURIComponent(name),
    };
    const progress = opts.onProgress;
    if (typeof XMLHttpRequest !== "undefined" && this.usesGlobalFetch) {
      return new Promise<Attachment>((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", url);
        xhr.withCredentials = true;
        for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
        if (progress) xhr.upload.onprogress = (e) => progress(e.loaded, blob.size);
        xhr.onerror = () => reject(new ChatError("network", "upload failed: network error"));
        xhr.onload = () => {
          let body: unknown = null;
          try {
            body = JSON.parse(xhr.responseText);
          } catch {
            // Not JSON: reported by status below.
          }
          try {
            resolve(this.answer<Attachment>(xhr.status, body, "/attachments"));
          } catch (err) {
            reject(err);
          }
        };
        xhr.send(blob);
      });
    }
    let sent = 0;
    const SLICE = 256 * 1024;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= blob.size) {
          controller.close();
          return;
        }
        const piece = new Uint8Array(await blob.slice(sent, sent + SLICE).arrayBuffer());
        controller.enqueue(piece);
        sent += piece.byteLength;
        progress?.(sent, blob.size);
      },
    });
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        method: "POST",
        headers: { ...headers, "Content-Length": String(blob.size) },
        body,
        credentials: "include",
        // Required by the fetch standard for a streamed request body.
        duplex: "half",
      } as RequestInit);
    } catch (err) {
      throw new ChatError("network", `upload failed: ${(err as Error).message}`);
    }
    return this.answer<Attachment>(res.status, await res.json().catch(() => null), "/attachments");
  }

  /** An attachment's bytes (for a thumbnail or a save), fetched with the token. */
  async download(id: string): Promise<Blob> {
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}/attachments/${encodeURIComponent(id)}`, {
        headers: { Authorization: `Bearer ${await this.currentToken()}` },
        credentials: "include",
      });
    } catch (err) {
      throw new ChatError("network", `download failed: ${(err as Error).message}`);
    }
    if (!res.ok) this.answer(res.status, await res.json().catch(() => null), "/attachments");
    return res.blob();
  }

  private readonly usesGlobalFetch: boolean;

  private async currentToken(): Promise<string> {
    return typeof this.token === "function" ? await this.token() : this.token;
  }

  private answer<T>(status: number, body: unknown, path: string): T {
    if (status < 200 || status > 299) {
      const e = (body as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ChatError(
        (e?.code as ChatError["code"]) ?? "unknown",
        e?.message ?? `HTTP ${status} from ${path}`,
        status,
      );
    }
    return body as T;
  }

  private async get<T>(path: string, query: Record<string, string | number | undefined>): Promise<T> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    const token = typeof this.token === "function" ? await this.token() : this.token;
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}${path}${qs ? `?${qs}` : ""}`, {
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
        // Against the platform's Django, the service needs the site's device_id cookie; a browser
        // only sends cookies on a cross-origin fetch when asked to.
        credentials: "include",
      });
    } catch (err) {
      throw new ChatError("network", `request to ${path} failed: ${(err as Error).message}`);
    }
    const body = (await res.json().catch(() => null)) as {
      error?: { code?: string; message?: string };
    } | null;
    if (!res.ok) {
      const e = body?.error;
      throw new ChatError(
        (e?.code as ChatError["code"]) ?? "unknown",
        e?.message ?? `HTTP ${res.status}`,
        res.status,
      );
    }
    return body as T;
  }
}
