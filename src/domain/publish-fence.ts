/**
 * What is committed but not yet published. With the sync of the WAL off the event loop, a
 * message sits in SQLite for a moment before the sync that covers it returns and it is
 * published. Readers (a resume with `since=`, REST pages, the change feed) skip what is held
 * here: it is not yet durable, so nobody may hear of it, and a resuming socket that already
 * joined the topic gets it from the publish instead — read and publish never both deliver it,
 * and neither misses it, because a release happens in the same turn as its publish.
 */

export type FenceKey = { kind: "message" | "change"; id: string };

export function createPublishFence() {
  // Ids are unique across conversations; a count per conversation answers `holds` cheaply.
  const held = new Set<string>();
  const perConversation = new Map<string, number>();
  const keyOf = (k: FenceKey) => (k.kind === "message" ? k.id : `change:${k.id}`);

  return {
    hold(conversationId: string, k: FenceKey): void {
      const key = keyOf(k);
      if (held.has(key)) return;
      held.add(key);
      perConversation.set(conversationId, (perConversation.get(conversationId) ?? 0) + 1);
    },

    release(conversationId: string, k: FenceKey): void {
      if (!held.delete(keyOf(k))) return;
      const n = (perConversation.get(conversationId) ?? 1) - 1;
      if (n === 0) perConversation.delete(conversationId);
      else perConversation.set(conversationId, n);
    },

    /** Whether anything of the conversation is held (readers filter only then). */
    holds(conversationId: string): boolean {
      return perConversation.has(conversationId);
    },

    /** Whether a reader may show it (not held). */
    shows(conversationId: string, k: FenceKey): boolean {
      return !perConversation.has(conversationId) || !held.has(keyOf(k));
    },

    /** The items a reader may show: those not held. */
    visible<T>(conversationId: string, items: T[], key: (item: T) => FenceKey): T[] {
      return perConversation.has(conversationId)
        ? items.filter((item) => !held.has(keyOf(key(item))))
        : items;
    },
  };
}

/**
 * For commits that settle in the turn that makes them (the sync on the event loop): a reader,
 * running in a turn of its own, can never see a row between its commit and its publish.
 */
export const NO_FENCE: PublishFence = {
  hold() {},
  release() {},
  holds: () => false,
  shows: () => true,
  visible: (_, items) => items,
};

export const messageKey = (m: { id: string }): FenceKey => ({ kind: "message", id: m.id });
export const changeKey = (e: { change: { messageId: string } }): FenceKey => ({
  kind: "change",
  id: e.change.messageId,
});

export type PublishFence = ReturnType<typeof createPublishFence>;

/**
 * Commits `write` through `submit`, holding `key` from inside the commit when `isNew` says the
 * write stored something; a commit (or sync) that fails releases what it held. The caller
 * releases it once it has published.
 */
export function commitHeld<T>(
  fence: PublishFence,
  submit: (run: () => T) => Promise<T>,
  conversationId: string,
  key: FenceKey,
  write: () => T,
  isNew: (result: T) => boolean,
): Promise<T> {
  // Nothing to hold: the write goes straight through, without a wrapper of its own per message.
  if (fence === NO_FENCE) return submit(write);
  // Released on failure only if held here: another write may hold the same key.
  let held = false;
  return submit(() => {
    const result = write();
    held = isNew(result);
    if (held) fence.hold(conversationId, key);
    return result;
  }).catch((err: unknown) => {
    if (held) fence.release(conversationId, key);
    throw err;
  });
}
