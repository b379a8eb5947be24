import type { ChatError } from "./types.ts";

/** Promises waiting for the next occurrence of something (a `ready`): all settled at once. */
export class Waiters<T> {
  private list: Array<{ resolve: (value: T) => void; reject: (err: ChatError) => void }> = [];

  wait(): Promise<T> {
    return new Promise<T>((resolve, reject) => this.list.push({ resolve, reject }));
  }

  resolveAll(value: T): void {
    for (const w of this.list.splice(0)) w.resolve(value);
  }

  rejectAll(err: ChatError): void {
    for (const w of this.list.splice(0)) w.reject(err);
  }
}
