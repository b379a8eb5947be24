import type { Conversation, Message, Page, PresenceStatus, TokenSource } from "./types.ts";
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

  /** The newest stored message id of the caller's conversation in a lesson (ZERO_ID when none yet). */
  async latestMessageId(lessonId: number, studentId: number | undefined, zero: string): Promise<string> {
    const [conversation] = await this.conversations({ lessonId, studentId });
    if (!conversation) return zero; // created by this connect: empty so far
    const [latest] = await this.messages(conversation.id, { limit: 1 });
    return latest?.id ?? zero;
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
