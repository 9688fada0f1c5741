import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub } from 'graphql-yoga';
import { Redis } from 'ioredis';
import { ConfigError, redact } from '../config';

/** A stored message as every transport delivers it. */
export interface MessageEvent {
  id: number;
  chatId: number;
  userId: number | null;
  username: string | null;
  /** The author as Prisma selects it, so GraphQL resolves `username` with no further query. */
  user: { username: string } | null;
  content: string;
  isBot: boolean;
  status: string;
  replyToId: number | null;
  createdAt: Date;
}

export interface TypingEvent {
  chatId: number;
  userId: number;
  username: string;
  /** The `/ws` socket it came from, which does not hear its own typing; null from GraphQL. */
  socketId: string | null;
}

/** One step of a bot answer: deltas while `isComplete` is false, then one completion. */
export interface BotStreamEvent {
  chatId: number;
  messageId: number;
  chunk: string;
  isComplete: boolean;
  fullResponse?: string;
  error?: string;
  stopped?: boolean;
}

/** Someone's `/ws` socket joined or left a room; `socketId` lets that socket skip its own notice. */
export interface PresenceEvent {
  chatId: number;
  username: string;
  kind: 'joined' | 'left';
  socketId: string;
}

export interface ChatInviteEvent {
  chatId: number;
  chatName: string | null;
  invitedBy: string;
}

/**
 * The typed topics every transport subscribes to, scoped by chat (or user) id. Services publish
 * after they write; `/ws` and graphql-ws only subscribe and translate.
 */
export type Events = {
  'chat:message': [chatId: number, event: MessageEvent];
  'chat:typing': [chatId: number, event: TypingEvent];
  'chat:presence': [chatId: number, event: PresenceEvent];
  'chat:bot': [chatId: number, event: BotStreamEvent];
  /** Asks whichever instance runs that answer to stop it. */
  'chat:stop': [chatId: number, request: { chatId: number; messageId: number }];
  'user:invited': [userId: number, event: ChatInviteEvent];
};

export type PubSub = ReturnType<typeof createPubSub<Events>>;

export interface EventBus {
  pubsub: PubSub;
  /** The Redis connection for commands (the cluster-wide bot lock), when there is one. */
  redis?: Redis;
  /** 'local' for one process, or Redis's connection state. */
  state: () => string;
  close: () => Promise<void>;
}

/**
 * In one process the pub/sub is in memory. With REDIS_URL it runs on Redis through two clients
 * (one is held in subscriber mode), so an event published on any instance reaches every instance.
 */
export async function createEventBus(redisUrl: string | null, prefix: string): Promise<EventBus> {
  if (!redisUrl) return { pubsub: createPubSub<Events>(), state: () => 'local', close: async () => {} };
  const options = { lazyConnect: true, maxRetriesPerRequest: 3 };
  const publishClient = new Redis(redisUrl, options);
  const subscribeClient = new Redis(redisUrl, options);
  try {
    await Promise.all([publishClient.connect(), subscribeClient.connect()]);
  } catch (error) {
    publishClient.disconnect();
    subscribeClient.disconnect();
    throw new ConfigError(
      `Cannot reach Redis at ${redact(redisUrl)} (${(error as Error).message}). Start Redis, fix REDIS_URL, or unset it to run as one process.`,
    );
  }
  const eventTarget = createRedisEventTarget<CustomEvent>({ publishClient, subscribeClient, serializer: { stringify: JSON.stringify, parse: parseWithDates } });
  return {
    pubsub: createPubSub<Events>({ eventTarget: prefixChannels(eventTarget, prefix) }),
    redis: publishClient,
    state: () => publishClient.status,
    close: async () => {
      await Promise.all([publishClient.quit(), subscribeClient.quit()]);
    },
  };
}

/** Events carry Dates (`createdAt`); JSON over Redis turns them into strings, so they are revived here. */
const parseWithDates = (text: string): unknown =>
  JSON.parse(text, (key, value) => (key === 'createdAt' && typeof value === 'string' ? new Date(value) : value));

type AnyEventTarget = ReturnType<typeof createRedisEventTarget<CustomEvent>>;

/** The same event target with every event type (a Redis channel) under `prefix`. */
function prefixChannels(target: AnyEventTarget, prefix: string): AnyEventTarget {
  return {
    addEventListener: (type, listener, options) => target.addEventListener(prefix + type, listener, options),
    removeEventListener: (type, listener, options) => target.removeEventListener(prefix + type, listener, options),
    dispatchEvent: (event) => target.dispatchEvent(new CustomEvent(prefix + event.type, { detail: event.detail })),
  };
}
