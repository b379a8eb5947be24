/**
 * The chat client for browsers and Bun: `WebSocket` and `fetch` only, no dependencies.
 * See the README, section "Client".
 */
export { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";
export { ChatClient, type ChatClientOptions, type ChatEvents, type ConnectionState } from "./chat-client.ts";
export { newClientId } from "./client-id.ts";
export { ChatRest, type RestOptions } from "./rest.ts";
export type {
  Ack,
  Attachment,
  AttachmentRef,
  Conversation,
  ErrorCode,
  ErrorFrame,
  Message,
  Page,
  Presence,
  PresenceStatus,
  Ready,
  TokenSource,
  Typing,
  UploadOptions,
  Viewed,
} from "./types.ts";
export { ChatError, type ChatErrorCode } from "./types.ts";
