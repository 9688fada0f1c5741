import type { MessageEvent } from '../../src/services/pubsub';

/** A user's message as the services publish it: ana's message `id` in chat 1, with what `changes` says instead. */
export const messageEvent = (id: number, changes: Partial<MessageEvent> = {}): MessageEvent => ({
  id,
  chatId: 1,
  userId: 1,
  username: 'ana',
  user: { id: 1, username: 'ana', email: 'ana@example.com', createdAt: new Date(0), displayName: null, avatarKey: null },
  content: `message ${id}`,
  isBot: false,
  status: 'complete',
  replyToId: null,
  askPending: false,
  createdAt: new Date(0),
  editedAt: null,
  deletedAt: null,
  assistantId: null,
  assistant: null,
  threadId: null,
  sources: null,
  changeMark: null,
  senderName: null,
  reactions: [],
  attachments: [],
  ...changes,
});
