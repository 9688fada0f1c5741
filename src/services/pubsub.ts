import { createPubSub } from 'graphql-yoga';

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
  'user:invited': [userId: number, event: ChatInviteEvent];
};

export type PubSub = ReturnType<typeof createPubSub<Events>>;

export const createEventBus = (options?: Parameters<typeof createPubSub<Events>>[0]): PubSub => createPubSub<Events>(options);
