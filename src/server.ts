import type { Server } from "bun";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { ChatSocket, createSessionHandlers, SessionData } from "./ws/session.ts";

/**
 * Owns Bun.serve: `/ws` goes to the upgrade, everything else to the REST app; and the order
 * in which a running service stops.
 */

export interface ServerParts {
  config: Config;
  logger: Logger;
  upgrade: (req: Request, server: Server<SessionData>) => Promise<Response | undefined>;
  fetch: (req: Request, server: Server<SessionData>) => Response | Promise<Response>;
  session: ReturnType<typeof createSessionHandlers>;
  sockets: Set<ChatSocket>;
}

/** What stops, in order, after the sockets are closed. */
export interface Teardown {
  /** Commits what the group committer holds and waits until it is on disk. */
  drainCommits(): Promise<void>;
  closeFanout(): Promise<void>;
  /** A last outbox flush, bounded; whatever is left stays for the next start. */
  stopWorker(budgetMs: number): Promise<void>;
  closeStore(): Promise<void>;
}

export function serve(parts: ServerParts): Server<SessionData> {
  const { config, session } = parts;
  return Bun.serve<SessionData>({
    port: config.PORT,
    hostname: config.HOST,
    // The largest attachment plus multipart framing; the upload route enforces the exact limit.
    maxRequestBodySize: (config.ATTACHMENT_MAX_MB + 1) * 1024 * 1024,
    fetch(req, srv) {
      if (new URL(req.url).pathname === "/ws") return parts.upgrade(req, srv);
      return parts.fetch(req, srv);
    },
    websocket: {
      maxPayloadLength: config.MAX_FRAME_BYTES,
      idleTimeout: config.HEARTBEAT_IDLE_S,
      sendPings: true,
      backpressureLimit: config.SEND_BUFFER_LIMIT_BYTES,
      closeOnBackpressureLimit: true,
      open: session.open,
      drain: session.drain,
      message: session.message,
      close: session.close,
    },
  });
}

/** Drains and stops: unready, acks what is queued, closes sockets with 1001, closes the store. */
export function createShutdown(
  parts: Pick<ServerParts, "config" | "logger" | "sockets"> & {
    server: () => Server<SessionData> | undefined;
    setDraining: () => void;
    teardown: Teardown;
  },
) {
  const { config, logger, sockets, teardown } = parts;
  let stopped: Promise<void> | undefined;
  return (reason = "shutdown"): Promise<void> => {
    stopped ??= (async () => {
      parts.setDraining();
      logger.info("shutting down", { reason, connections: sockets.size });
      // Unready first, then wait, so the load balancer's next probe moves traffic away while
      // open chats still work; only then are they told to reconnect elsewhere.
      if (config.SHUTDOWN_DRAIN_DELAY_MS > 0) await Bun.sleep(config.SHUTDOWN_DRAIN_DELAY_MS);
      // Commit what is queued first, so those senders still get their ack.
      await teardown.drainCommits();
      for (const ws of sockets) ws.close(1001, "server restarting; reconnect with since=<last id>");
      await parts.server()?.stop(true);
      await teardown.closeFanout();
      await teardown.drainCommits();
      await teardown.stopWorker(config.MONGO_SHUTDOWN_FLUSH_MS);
      await teardown.closeStore();
      logger.info("stopped");
    })();
    return stopped;
  };
}
