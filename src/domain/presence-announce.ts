import type { Conversation } from "../model/types.ts";
import type { Presence } from "./presence.ts";

/**
 * Sockets come and go; presence should not. A closed socket leaves the presence view only
 * after `offlineDelayMs`, and a reconnect inside that window takes its place, so a page reload,
 * a flaky network or a reconnect loop is neither "offline" nor a new "online": not in the
 * frames the other side hears, not in the view a new socket's snapshot or `/presence` reads
 * (local or shared through Redis, on every instance alike), and no last-seen write. The other
 * side hears "online" when a user opens their first socket in a conversation here, and
 * "offline" once the view has lost them, in every conversation that heard "online". The churn
 * itself is charged to the churner by the per-user upgrade budget (auth/upgrade-budget.ts).
 */

export interface AnnouncerDeps {
  presence: Pick<Presence, "connected" | "disconnected" | "connections">;
  announce: (conversation: Conversation, userId: number, online: boolean, lastSeen?: number) => void;
  offlineDelayMs: number;
  onError: (err: unknown) => void;
}

interface Hold {
  at: number;
  timer?: ReturnType<typeof setTimeout>;
}

interface UserState {
  /** Open sockets here, by conversation id. */
  open: Map<string, number>;
  /** Conversations told "online" and not yet "offline". */
  told: Map<string, Conversation>;
  /** Closed sockets still counted in the presence view; a reconnect takes the oldest over. */
  held: Hold[];
}

export type PresenceAnnouncer = ReturnType<typeof createPresenceAnnouncer>;

export function createPresenceAnnouncer(deps: AnnouncerDeps) {
  const users = new Map<number, UserState>();

  function forgetIfIdle(userId: number, st: UserState): void {
    if (st.open.size === 0 && st.held.length === 0 && users.get(userId) === st) users.delete(userId);
  }

  /** The held close leaves the view now; if that took the user offline, say so. */
  async function release(userId: number, st: UserState, hold: Hold): Promise<void> {
    const i = st.held.indexOf(hold);
    if (i < 0) return;
    st.held.splice(i, 1);
    if (hold.timer !== undefined) clearTimeout(hold.timer);
    try {
      const { wentOffline } = await deps.presence.disconnected(userId, hold.at);
      if (wentOffline) {
        for (const conversation of st.told.values()) deps.announce(conversation, userId, false, hold.at);
        st.told.clear();
      }
    } catch (err) {
      deps.onError(err);
    } finally {
      forgetIfIdle(userId, st);
    }
  }

  return {
    opened(conversation: Conversation, userId: number, at: number): void {
      let st = users.get(userId);
      if (!st) {
        st = { open: new Map(), told: new Map(), held: [] };
        users.set(userId, st);
      }
      st.open.set(conversation.id, (st.open.get(conversation.id) ?? 0) + 1);
      const hold = st.held.shift();
      if (hold) clearTimeout(hold.timer);
      else deps.presence.connected(userId, at);
      if (st.told.has(conversation.id)) return;
      st.told.set(conversation.id, conversation);
      deps.announce(conversation, userId, true);
    },

    closed(conversation: Conversation, userId: number, at: number): void {
      const st = users.get(userId);
      if (!st) return;
      const n = (st.open.get(conversation.id) ?? 1) - 1;
      if (n > 0) st.open.set(conversation.id, n);
      else st.open.delete(conversation.id);
      const hold: Hold = { at };
      st.held.push(hold);
      if (deps.offlineDelayMs <= 0) {
        void release(userId, st, hold);
        return;
      }
      hold.timer = setTimeout(() => void release(userId, st, hold), deps.offlineDelayMs);
      hold.timer.unref?.();
    },

    /** Open sockets of the user here, without the closes still held (for the connection cap). */
    connections(userId: number): number {
      return deps.presence.connections(userId) - (users.get(userId)?.held.length ?? 0);
    },

    /** At shutdown: every held close leaves the view now, while the bus can still say so. */
    async flush(): Promise<void> {
      const all = [...users].flatMap(([userId, st]) => st.held.map((h) => release(userId, st, h)));
      await Promise.all(all);
    },
  };
}
