/**
 * Jepsen-style total-queue checker: given what clients tried to send, what the system acknowledged and
 * what is finally stored, report acknowledged messages that vanished, messages stored twice, and
 * messages that appeared from nowhere.
 *
 * Un-acked sends are allowed to be either stored or not: a write whose ack was lost in a network fault
 * may still have been applied, so only acked − stored counts as loss.
 */

export interface QueueHistory {
  /** Every id a client attempted to write, acked or not. */
  sent: readonly string[];
  /** Ids the system confirmed as durably written. */
  acked: readonly string[];
  /** Ids read back from the system of record at the end (one entry per stored copy). */
  stored: readonly string[];
}

export interface QueueCheckResult {
  /** Acked but not stored: a durability violation. */
  lost: string[];
  /** Stored more than once: an idempotency violation. */
  duplicated: string[];
  /** Stored but never sent: corruption or a bug in the harness. */
  unexpected: string[];
  /** Sent, never acked, yet stored: legal, but worth knowing how often it happens. */
  recovered: string[];
  ok: boolean;
  counts: {
    sent: number;
    acked: number;
    /** Number of stored entries including duplicate copies. */
    stored: number;
    storedDistinct: number;
    lost: number;
    duplicated: number;
    unexpected: number;
    recovered: number;
  };
}

export function checkQueue(history: QueueHistory): QueueCheckResult {
  const sent = new Set(history.sent);
  const acked = new Set(history.acked);
  const storedCount = new Map<string, number>();
  for (const id of history.stored) storedCount.set(id, (storedCount.get(id) ?? 0) + 1);

  // Sorted output keeps failure messages and snapshots stable regardless of read order.
  const lost = [...acked].filter((id) => !storedCount.has(id)).sort();
  const duplicated = [...storedCount]
    .filter(([, n]) => n > 1)
    .map(([id]) => id)
    .sort();
  const unexpected = [...storedCount.keys()].filter((id) => !sent.has(id)).sort();
  const recovered = [...storedCount.keys()].filter((id) => sent.has(id) && !acked.has(id)).sort();

  return {
    lost,
    duplicated,
    unexpected,
    recovered,
    ok: lost.length === 0 && duplicated.length === 0 && unexpected.length === 0,
    counts: {
      sent: sent.size,
      acked: acked.size,
      stored: history.stored.length,
      storedDistinct: storedCount.size,
      lost: lost.length,
      duplicated: duplicated.length,
      unexpected: unexpected.length,
      recovered: recovered.length,
    },
  };
}
