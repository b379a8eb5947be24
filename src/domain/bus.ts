/** What a frame is, said beside it so a relay need not read the frame to know. */
export const FRAME_KINDS = [
  "message",
  "viewed",
  "typing",
  "presence",
  "message_edited",
  "message_deleted",
] as const;
export type FrameKind = (typeof FRAME_KINDS)[number];

/**
 * Messages, read marks, edits and deletes are durable at their origin: worth keeping and
 * repairing when relayed.
 */
export const isDurableKind = (kind: FrameKind | undefined) =>
  kind !== undefined && kind !== "typing" && kind !== "presence";

/**
 * Decides whether a frame relayed from another instance is delivered here, after keeping
 * whatever this instance stores of it. A promise holds back later frames until it settles.
 */
export type Accept = (
  conversationId: string,
  frame: string,
  replay: boolean,
  kind?: FrameKind,
) => boolean | Promise<boolean>;

/**
 * The port through which the domain fans frames out (bus/ implements it). Fan-out of frames to the sockets of a conversation. In one process this is Bun's native
 * pub/sub; across instances the Redis bus carries the same calls. Frames are encoded once,
 * before they reach the bus.
 */
export interface Bus {
  /** To everyone in the conversation, or to one participant of it when `toUserId` is given. */
  publish(conversationId: string, frame: string, toUserId?: number, kind?: FrameKind): void;
  /**
   * A socket of this instance joined the conversation: from when this resolves, frames
   * published for it on any instance reach this one. Counted; pair each with `unwatch`.
   */
  watch(conversationId: string): Promise<void>;
  unwatch(conversationId: string): void;
  healthy(): boolean;
  close(): Promise<void>;
}

/** Bun topics: one per conversation, plus one per participant within it for targeted frames. */
export const conversationTopic = (conversationId: string) => `c:${conversationId}`;
export const participantTopic = (conversationId: string, userId: number) => `c:${conversationId}:u:${userId}`;

export type Deliver = (topic: string, frame: string) => void;

export function topicOf(conversationId: string, toUserId?: number): string {
  return toUserId === undefined
    ? conversationTopic(conversationId)
    : participantTopic(conversationId, toUserId);
}
