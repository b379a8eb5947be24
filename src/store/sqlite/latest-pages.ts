const MAX_CHARS = 32 * 1024 * 1024;

/**
 * The newest page of a conversation, as the JSON a client gets: every client opens a
 * conversation with it, and building it costs a query, ISO dates and an encode per message.
 * Keyed by conversation, then limit. Every write to `messages` drops its conversation's entry
 * (or all of them) right beside the write, so no path can serve a page it changed.
 * Bounded by characters held, so odd limits over many conversations cannot grow it unchecked.
 */
export function createLatestPages(maxChars = MAX_CHARS) {
  const pages = new Map<string, Map<number, string>>();
  let chars = 0;
  return {
    forget(conversationId: string): void {
      const byLimit = pages.get(conversationId);
      if (!byLimit) return;
      for (const json of byLimit.values()) chars -= json.length;
      pages.delete(conversationId);
    },

    get(conversationId: string, limit: number, build: () => string): string {
      let byLimit = pages.get(conversationId);
      const hit = byLimit?.get(limit);
      if (hit !== undefined) return hit;
      const json = build();
      if (chars + json.length > maxChars) {
        pages.clear();
        chars = 0;
        byLimit = undefined;
      }
      if (!byLimit) {
        byLimit = new Map();
        pages.set(conversationId, byLimit);
      }
      byLimit.set(limit, json);
      chars += json.length;
      return json;
    },
  };
}

export type LatestPages = ReturnType<typeof createLatestPages>;
