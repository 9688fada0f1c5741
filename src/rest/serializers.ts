import type { PublicUser } from '../services/auth.service';
import type { MessageEvent } from '../services/pubsub';

/** The original service's JSON shapes, snake_case and all. */
export const userJson = (user: PublicUser) => ({
  id: user.id,
  username: user.username,
  email: user.email,
  created_at: user.createdAt.toISOString(),
});

export const chatJson = (chat: { id: number; name: string | null; ownerId: number; isGroup: boolean; createdAt: Date }) => ({
  id: chat.id,
  name: chat.name,
  owner_id: chat.ownerId,
  is_group: chat.isGroup,
  created_at: chat.createdAt.toISOString(),
});

export const messageJson = (message: MessageEvent) => ({
  id: message.id,
  chat_id: message.chatId,
  user_id: message.userId,
  username: message.username,
  content: message.content,
  is_bot: message.isBot,
  created_at: message.createdAt.toISOString(),
});
