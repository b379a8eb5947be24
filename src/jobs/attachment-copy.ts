import type { Metrics } from "../metrics.ts";
import type { OutboxEntry } from "../model/outbox.ts";
import type { OutboxHandler } from "./outbox-worker.ts";

/**
 * The outbox handler that keeps GridFS in step with the attachments uploaded here: copy one
 * (streamed from the local file; idempotent by id) or remove one. A handler of its own, beside
 * the MongoDB messages handler, so a 10 MB copy never holds up messages and a message backlog
 * never holds up a copy. Copy and removal of one id keep their order: same handler, seq order.
 */

export const ATTACHMENT_KINDS = ["attachment_copy", "attachment_delete"] as const;
type AttachmentKind = (typeof ATTACHMENT_KINDS)[number];

export interface AttachmentSink {
  prepare(): Promise<void>;
  copy(id: string): Promise<void>;
  remove(id: string): Promise<void>;
}

export function createAttachmentCopy(sink: AttachmentSink, metrics: Metrics): OutboxHandler<AttachmentKind> {
  const done = metrics.registry.counter(
    "chat_attachment_gridfs_total",
    "Attachment copies to and removals from GridFS confirmed, by kind",
  );
  const errors = metrics.registry.counter("chat_attachment_gridfs_errors_total", "Failed GridFS passes");
  let prepared = false;
  return {
    name: "GridFS",
    kinds: ATTACHMENT_KINDS,
    async prepare() {
      if (prepared) return;
      await sink.prepare();
      prepared = true;
    },
    async handle(entries: OutboxEntry<AttachmentKind>[], confirm) {
      // One at a time: each copy streams a whole file, and confirming each as it lands means a
      // failure later in the batch does not send the earlier ones again.
      for (const entry of entries) {
        if (entry.kind === "attachment_copy") await sink.copy(entry.payload.id);
        else await sink.remove(entry.payload.id);
        confirm([entry]);
      }
    },
    failed() {
      errors.inc();
    },
    confirmed(kind, n) {
      done.inc({ kind }, n);
    },
  };
}
