/**
 * Message ids already handed to the app, so a resume or a history page never repeats one.
 * Bounded: resume replays only ids above the last one, so the oldest can no longer come back.
 */
export class SeenIds {
  private readonly ids = new Set<string>();

  constructor(private readonly limit: number) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    this.ids.add(id);
    if (this.ids.size > this.limit) {
      const oldest = this.ids.values().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
  }
}
