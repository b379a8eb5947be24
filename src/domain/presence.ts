/**
 * Who is connected to this instance. A user is online while any of their connections is open
 * (several tabs or devices count once). Transitions are returned so the caller can announce
 * only real changes.
 */
export class PresenceTracker {
  private readonly counts = new Map<number, number>();

  connected(userId: number): { cameOnline: boolean } {
    const n = this.counts.get(userId) ?? 0;
    this.counts.set(userId, n + 1);
    return { cameOnline: n === 0 };
  }

  disconnected(userId: number): { wentOffline: boolean } {
    const n = this.counts.get(userId) ?? 0;
    if (n <= 1) {
      this.counts.delete(userId);
      return { wentOffline: n === 1 };
    }
    this.counts.set(userId, n - 1);
    return { wentOffline: false };
  }

  connections(userId: number): number {
    return this.counts.get(userId) ?? 0;
  }

  isOnline(userId: number): boolean {
    return this.counts.has(userId);
  }

  get onlineUsers(): number {
    return this.counts.size;
  }

  /** Every user connected here, with their connection count. */
  entries(): IterableIterator<[number, number]> {
    return this.counts.entries();
  }
}

/** Where a user's last-seen time is kept locally (the SQLite presence table). */
export interface LastSeenStore {
  touchPresence(userId: number, at: number): void;
  lastSeen(userId: number): number | null;
}

export interface PresenceStatus {
  online: boolean;
  /** Epoch ms; now while online. */
  lastSeen: number | null;
}

/**
 * The presence view the sockets and REST use. In one process it is the tracker above; with
 * Redis it is shared by every instance (src/bus/redis-presence.ts). Only real transitions of the
 * shared view are reported, so a user still connected elsewhere never "goes offline".
 */
export interface Presence {
  connected(userId: number, at: number): void;
  disconnected(userId: number, at: number): Promise<{ wentOffline: boolean }>;
  status(userId: number): Promise<PresenceStatus>;
  /**
   * The same, when the view is in this process (no Redis): a socket's snapshot then goes out in
   * the same write as its `ready` frame instead of a write of its own after the promise.
   */
  statusNow?(userId: number): PresenceStatus;
  /** Connections on this instance (for the per-user connection cap). */
  connections(userId: number): number;
  /** Users with a connection on this instance. */
  readonly localUsers: number;
  close(): Promise<void>;
}

/** Last-seen writes must not fail a close during shutdown, when the store may be gone. */
function touchQuietly(store: LastSeenStore, userId: number, at: number): void {
  try {
    store.touchPresence(userId, at);
  } catch {
    // best effort
  }
}

export function createLocalPresence(
  tracker: PresenceTracker,
  store: LastSeenStore,
  now: () => number,
): Presence {
  const statusNow = (userId: number): PresenceStatus => {
    const online = tracker.isOnline(userId);
    return { online, lastSeen: online ? now() : store.lastSeen(userId) };
  };
  return {
    connected(userId, at) {
      tracker.connected(userId);
      touchQuietly(store, userId, at);
    },
    async disconnected(userId, at) {
      const { wentOffline } = tracker.disconnected(userId);
      touchQuietly(store, userId, at);
      return { wentOffline };
    },
    async status(userId) {
      return statusNow(userId);
    },
    statusNow,
    connections: (userId) => tracker.connections(userId),
    get localUsers() {
      return tracker.onlineUsers;
    },
    close: async () => {},
  };
}
