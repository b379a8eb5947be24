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
}
