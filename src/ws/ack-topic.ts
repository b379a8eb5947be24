import type { ServerWebSocket } from "bun";

type AckedSocket = ServerWebSocket<{ connId: number; ackTopic?: string }>;

/** The socket's own topic, which only its acks are published on (kept once joined: one per ack otherwise). */
export const ackTopic = (ws: AckedSocket) => ws.data.ackTopic ?? `a:${ws.data.connId}`;

/**
 * Acks go out on the socket's own topic, so they are written with its other frames at the end
 * of the turn rather than by a syscall each. The topic is joined with the first frame that will
 * be acked: an idle socket does not pay for it (~0.4 KB each; docs/performance-log.md).
 */
export function joinAckTopic(ws: AckedSocket): void {
  if (ws.data.ackTopic !== undefined) return;
  ws.data.ackTopic = `a:${ws.data.connId}`;
  ws.subscribe(ws.data.ackTopic);
}
