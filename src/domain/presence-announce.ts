import type { Conversation } from "../model/types.ts";
import type { Presence } from "./presence.ts";

/**
 * Decides which presence changes the other side of a conversation hears. Only transitions are
 * announced, and "offline" only once the user has stayed away for `offlineDelayMs`: a reconnect
 * (a page reload, a flaky network, a reconnect loop) inside that window is neither "offline"
 * nor a second "online". So however fast a user churns, the other side hears at most one
 * "online" and one "offline" per window; the churn itself is charged to the churner by the
 * per-user upgrade budget (auth/upgrade-budget.ts).
 */

export interface AnnouncerDeps {
  presence: Pick<Presence, "status">;
  announce: (conversation: Conversation, userId: number, online: boolean, lastSeen?: number) => void;
  offlineDelayMs: number;
  onError: (err: unknown) => void;
}

interface Entry {
  /** This user's open sockets in this conversation, here. */
  sockets: number;
  /** A pending "offline", cancelled by a reconnect. */
  timer?: ReturnType<typeof setTimeout>;
  fire?: () => Promise<void>;
}

export type PresenceAnnouncer = ReturnType<typeof createPresenceAnnouncer>;

export function createPresenceAnnouncer(deps: AnnouncerDeps) {
  // Keyed by conversation and user: one user in several conversations is announced in each.
  const entries = new Map<string, Entry>();
  const keyOf = (c: Conversation, userId: number) => `${c.id}:${userId}`;

  /** Says "offline" if the user is still away everywhere (another instance may have them). */
  async function announceOffline(
    conversation: Conversation,
    userId: number,
    at: number,
    went: Promise<boolean>,
  ) {
    if (!(await went)) return;
    if ((await deps.presence.status(userId)).online) return;
    deps.announce(conversation, userId, false, at);
  }

  return {
    opened(conversation: Conversation, userId: number): void {
      const key = keyOf(conversation, userId);
      const entry = entries.get(key);
      if (entry) {
        entry.sockets++;
        // Back within the window: the other side never heard "offline", so says nothing now.
        if (entry.timer !== undefined) clearTimeout(entry.timer);
        entry.timer = undefined;
        entry.fire = undefined;
        return;
      }
      entries.set(key, { sockets: 1 });
      deps.announce(conversation, userId, true);
    },

    /** `wentOffline`: whether the shared presence view lost the user with this close. */
    closed(conversation: Conversation, userId: number, at: number, wentOffline: Promise<boolean>): void {
      const key = keyOf(conversation, userId);
      const entry = entries.get(key);
      if (!entry) return;
      entry.sockets--;
      if (entry.sockets > 0) return;
      const fire = async () => {
        if (entries.get(key) !== entry || entry.sockets > 0) return;
        entries.delete(key);
        await announceOffline(conversation, userId, at, wentOffline).catch(deps.onError);
      };
      entry.fire = fire;
      if (deps.offlineDelayMs <= 0) {
        void fire();
        return;
      }
      entry.timer = setTimeout(fire, deps.offlineDelayMs);
      entry.timer.unref?.();
    },

    /** At shutdown: says the pending "offline"s now, while the bus is still up. */
    async flush(): Promise<void> {
      const pending = [...entries.values()].map((entry) => {
        if (entry.timer !== undefined) clearTimeout(entry.timer);
        return entry.fire?.();
      });
      await Promise.all(pending);
    },
  };
}
