import type { AttachmentView } from './services/attachments/attachment.service';
import type { PublicUser } from './services/auth.service';
import { avatarUrl } from './services/auth.service';
import type { UserPresence } from './services/presence.service';
import type { ChatSummary, MessageEvent, ReactionSummary, ReadReceipts } from './services/pubsub';
import type { ChatActivity } from './services/read-state.service';
import type { MessageSearchHit } from './services/search/message-search.service';

/** The original service's JSON shapes, snake_case and all: REST bodies and `/ws` frames alike. */
export const userJson = (user: PublicUser) => ({
  id: user.id,
  username: user.username,
  email: user.email,
  created_at: user.createdAt.toISOString(),
  display_name: user.displayName,
  avatar_url: avatarUrl(user),
});

/** A user's profile: the user and their bio. */
export const profileJson = (profile: PublicUser & { bio: string | null }) => ({ ...userJson(profile), bio: profile.bio });

/** A chat's participant: the user, whether they are online, and when they were last seen (null while online). */
export const participantJson = (participant: PublicUser & UserPresence) => ({
  ...userJson(participant),
  online: participant.online,
  last_seen_at: participant.lastSeenAt?.toISOString() ?? null,
});

export const chatJson = (chat: ChatSummary) => ({
  id: chat.id,
  name: chat.name,
  owner_id: chat.ownerId,
  is_group: chat.isGroup,
  created_at: chat.createdAt.toISOString(),
});

/** An item of the chat list: the chat, what is unread in it for the caller, and its last message. */
export const chatListItemJson = (chat: ChatSummary & ChatActivity) => ({
  ...chatJson(chat),
  unread_count: chat.unreadCount,
  last_message: chat.lastMessage?.content ?? null,
  last_message_time: chat.lastMessage?.createdAt.toISOString() ?? null,
});

/** A message's reactions, in first-use order. */
export const reactionsJson = (reactions: ReactionSummary[]) => reactions.map(({ emoji, count, userIds }) => ({ emoji, count, user_ids: userIds }));

/** Makes an attachment's download URL: a signed link, for the hour (src/services/attachments/links.ts). */
export interface AttachmentUrls {
  url(attachmentId: number): string;
}

export const attachmentJson = (attachment: AttachmentView, urls: AttachmentUrls) => ({
  id: attachment.id,
  filename: attachment.filename,
  content_type: attachment.contentType,
  size: attachment.size,
  kind: attachment.kind,
  url: urls.url(attachment.id),
  width: attachment.width,
  height: attachment.height,
  duration_ms: attachment.durationMs,
});

export const messageJson = (
  message: Pick<MessageEvent, 'id' | 'chatId' | 'userId' | 'username' | 'content' | 'isBot' | 'createdAt' | 'editedAt' | 'reactions' | 'attachments'>,
  urls: AttachmentUrls,
) => ({
  id: message.id,
  chat_id: message.chatId,
  user_id: message.userId,
  username: message.username,
  content: message.content,
  is_bot: message.isBot,
  created_at: message.createdAt.toISOString(),
  edited_at: message.editedAt?.toISOString() ?? null,
  reactions: reactionsJson(message.reactions),
  attachments: message.attachments.map((attachment) => attachmentJson(attachment, urls)),
});

export const readReceiptsJson = (receipts: ReadReceipts) =>
  Object.fromEntries(
    Object.entries(receipts).map(([messageId, readers]) => [
      messageId,
      readers.map((reader) => ({ user_id: reader.userId, username: reader.username, read_at: reader.readAt.toISOString() })),
    ]),
  );

export const messageSearchHitJson = (hit: MessageSearchHit) => ({
  chat_id: hit.chatId,
  message_id: hit.id,
  username: hit.username,
  content: hit.content,
  created_at: hit.createdAt.toISOString(),
  snippet: hit.snippet,
});
