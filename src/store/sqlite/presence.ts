import type { Database } from "bun:sqlite";

/** Each user's last-seen time, for the presence view when they are offline. */
export function createPresenceTable(db: Database) {
  const touch = db.query<null, [number, number]>(
    "INSERT INTO presence (user_id, last_seen) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
  );
  const get = db.query<{ last_seen: number }, [number]>("SELECT last_seen FROM presence WHERE user_id = ?");
  return {
    touchPresence(userId: number, at: number): void {
      touch.run(userId, at);
    },
    lastSeen(userId: number): number | null {
      return get.get(userId)?.last_seen ?? null;
    },
  };
}
