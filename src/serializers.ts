import type { PublicUser } from './services/auth.service';
import type { UserPresence } from './services/presence.service';
import type { AssistantMemory } from './services/bot/assistant.service';
import type { UsageReport, UsageTotals } from './services/bot/usage.service';
import type { AnswerVersion } from './services/bot/answer-versions';
import type { AnswerSource, AssistantView, ChatSummary, MessageEvent, ReactionSummary, ReadReceipts } from './services/pubsub';
import type { ChatActivity } from './services/read-state.service';
import type { MessageSearchHit } from './services/search/message-search.service';

/** The original service's JSON shapes, snake_case and all: REST bodies and `/ws` frames alike. */
export const userJson = (user: PublicUser) => ({
  id: user.id,
  username: user.username,
  email: user.email,
  created_at: user.createdAt.toISOString(),
});

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

/** A grounded answer's stored sources (JSON), parsed; [] for none or unreadable. */
export function parseSources(stored: string | null | undefined): AnswerSource[] {
  if (!stored) return [];
  try {
    const sources: unknown = JSON.parse(stored);
    return Array.isArray(sources) ? (sources as AnswerSource[]) : [];
  } catch {
    return [];
  }
}

/**
 * A message in the original shapes. The later fields are there only when they say something
 * (`assistant_id` on an assistant's ask or answer, `thread_id` in a thread, `sources` on a grounded
 * answer), so what earlier clients read is unchanged.
 */
export const messageJson = (
  message: Pick<MessageEvent, 'id' | 'chatId' | 'userId' | 'username' | 'content' | 'isBot' | 'createdAt' | 'editedAt' | 'reactions'> &
    Partial<Pick<MessageEvent, 'assistantId' | 'threadId' | 'sources'>>,
) => {
  const sources = parseSources(message.sources);
  return {
    id: message.id,
    chat_id: message.chatId,
    user_id: message.userId,
    username: message.username,
    content: message.content,
    is_bot: message.isBot,
    created_at: message.createdAt.toISOString(),
    edited_at: message.editedAt?.toISOString() ?? null,
    reactions: reactionsJson(message.reactions),
    ...(message.assistantId == null ? {} : { assistant_id: message.assistantId }),
    ...(message.threadId == null ? {} : { thread_id: message.threadId }),
    ...(sources.length > 0 ? { sources } : {}),
  };
};

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

export const assistantJson = (assistant: AssistantView) => ({
  id: assistant.id,
  chat_id: assistant.chatId,
  name: assistant.name,
  instructions: assistant.instructions,
  model: assistant.model,
  temperature: assistant.temperature,
  answers_mentions: assistant.answersMentions,
  grounding: assistant.grounding,
  is_default: assistant.isDefault,
  created_at: assistant.createdAt.toISOString(),
  updated_at: assistant.updatedAt.toISOString(),
});

export const assistantMemoryJson = (memory: AssistantMemory) => ({
  assistant_id: memory.assistantId,
  summary: memory.summary,
  up_to_message_id: memory.upToMessageId,
  updated_at: memory.updatedAt?.toISOString() ?? null,
});

const usageTotalsJson = (totals: UsageTotals) => ({
  answers: totals.answers,
  prompt_tokens: totals.promptTokens,
  answer_tokens: totals.answerTokens,
  total_tokens: totals.totalTokens,
  duration_ms: totals.durationMs,
});

export const usageJson = (report: UsageReport) => ({
  chat_id: report.chatId,
  from: report.from.toISOString(),
  to: report.to.toISOString(),
  total: usageTotalsJson(report.total),
  by_assistant: report.byAssistant.map((row) => ({ assistant_id: row.assistantId, name: row.name, ...usageTotalsJson(row) })),
  by_user: report.byUser.map((row) => ({ user_id: row.userId, username: row.username, ...usageTotalsJson(row) })),
});

export const answerVersionJson = (version: AnswerVersion) => ({
  version: version.version,
  content: version.content,
  sources: parseSources(version.sources),
  created_at: version.createdAt.toISOString(),
});
