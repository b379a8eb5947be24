/** A tiny typed event emitter; a throwing listener never breaks the client's own bookkeeping. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(value: never) => void>>();

  on<K extends keyof Events>(type: K, fn: (value: Events[K]) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(fn as (value: never) => void);
    return () => this.off(type, fn);
  }

  off<K extends keyof Events>(type: K, fn: (value: Events[K]) => void): void {
    this.listeners.get(type)?.delete(fn as (value: never) => void);
  }

  protected emit<K extends keyof Events>(type: K, value: Events[K]): void {
    for (const fn of this.listeners.get(type) ?? []) {
      try {
        (fn as (value: Events[K]) => void)(value);
      } catch (err) {
        (globalThis.reportError ?? console.error)(err);
      }
    }
  }
}
