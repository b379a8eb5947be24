import type { Metrics } from "../metrics.ts";
import { type CopiedKind, copyKindOf } from "../model/outbox.ts";
import type { Conversation } from "../model/types.ts";
import type { GroupCommitter } from "../store/group-commit.ts";
import type { ChatStore } from "../store/sqlite/index.ts";

/**
 * Every copy counts: an instance that keeps a message, read mark or conversation relayed from
 * another one also queues it for MongoDB, due only after `delayMs`. The instance that accepted it
 * flushes first in the common case and says so over the bus; that confirmation withdraws the
 * waiting copies, so MongoDB sees one write. If the origin is gone (its volume with it), the
 * copies come due and reach MongoDB by the same ids: nothing twice, nothing lost.
 */

/** The port through which an ack asks for a second durable copy (bus/ implements it). */
export interface SecondCopy {
  /** Resolves with the durable copies that exist: 2 once a peer holds it, 1 when it fell back. */
  secure(conversation: Conversation, kind: "message" | "viewed", frame: string): Promise<1 | 2>;
}

/** What an instance says of its copies in /readyz. */
export type CopiesStatus = Record<string, unknown> & { ok: boolean; wanted: number; copies: 1 | 2 };

/** The bus's side of copies: asking for a second copy, and telling peers what MongoDB now holds. */
export interface Copies extends SecondCopy {
  /** This instance's sink confirmed these: peers withdraw their waiting copies. */
  announce(kind: CopiedKind, keys: string[]): void;
  status(): CopiesStatus;
}

export interface CopyKeeper {
  /** When a copy made now comes due; undefined when nothing here drains copies (no MongoDB). */
  dueAt(kind: CopiedKind, key: string): number | undefined;
  /** A peer confirmed these: withdraw the copies still waiting here. */
  withdraw(kind: CopiedKind, keys: readonly string[]): void;
}

/** Copies remembered for withdrawal; past it, a confirmation finds nothing and a repeat write is harmless. */
const HELD_LIMIT = 200_000;

export function createCopyKeeper(deps: {
  store: Pick<ChatStore, "outboxWants" | "outboxCancelMany">;
  committer: GroupCommitter;
  delayMs: number;
  now: () => number;
  metrics: Metrics;
}): CopyKeeper {
  const { store, committer, now } = deps;
  const withdrawn = deps.metrics.registry.counter(
    "chat_copies_withdrawn_total",
    "Relayed copies withdrawn because their origin confirmed its MongoDB write first, by kind",
  );
  // Only keys queued here, so the confirmations of every peer's every flush cost no SQL when
  // they name nothing held here. Insertion order is due order (one delay), so pruning is from the front.
  const held = new Map<string, number>();
  const prune = (t: number) => {
    for (const [k, due] of held) {
      if (due > t && held.size < HELD_LIMIT) break;
      held.delete(k);
    }
  };

  return {
    dueAt(kind, key) {
      if (!store.outboxWants(copyKindOf(kind))) return undefined;
      const t = now();
      prune(t);
      const due = t + deps.delayMs;
      // Re-inserted, not updated: the map stays in due order.
      held.delete(`${kind}:${key}`);
      held.set(`${kind}:${key}`, due);
      return due;
    },

    withdraw(kind, keys) {
      // Copies are recorded inside the commit of the relayed frame, so a confirmation may arrive
      // while that commit is queued. Nothing queued and nothing held: nothing to withdraw here.
      if (committer.pending === 0 && !keys.some((k) => held.has(`${kind}:${k}`))) return;
      // Through the committer: this runs after the write that queues the copy, which was
      // submitted when the relayed frame arrived, before this confirmation.
      committer
        .submit(() => {
          const mine = keys.filter((k) => held.delete(`${kind}:${k}`));
          store.outboxCancelMany(copyKindOf(kind), mine);
          return mine.length;
        })
        .then((n) => withdrawn.inc({ kind }, n))
        .catch(() => {
          // The copy stays and is written when due: a duplicate-key answer, nothing worse.
        });
    },
  };
}
