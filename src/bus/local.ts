import { type Bus, type Deliver, topicOf } from "../domain/bus.ts";

export function createLocalBus(deliver: Deliver): Bus {
  return {
    publish(conversationId, frame, toUserId) {
      deliver(topicOf(conversationId, toUserId), frame);
    },
    watch: async () => {},
    unwatch: () => {},
    healthy: () => true,
    close: async () => {},
  };
}
