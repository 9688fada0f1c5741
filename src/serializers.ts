import type { AttachmentView } from './services/attachments/attachment.service';
import type { PublicUser } from './services/auth.service';
import type { SignInMethods } from './services/oauth/oauth.service';
import type { CreatedWebhook, WebhookDeliveryView, WebhookView } from './services/webhooks/webhook.service';
import type { CreatedIncomingHook, IncomingHookView } from './services/webhooks/incoming-hook.service';
import { avatarUrl } from './services/auth.service';
import type { UserPresence } from './services/presence.service';
import type { AssistantMemory } from './services/bot/assistant.service';
import type { UsageReport, UsageTotals } from './services/bot/usage.service';
import type { AnswerVersion } from './services/bot/answer-versions';
import type { AnswerSource, AssistantView, BotStreamEvent, ChatSummary, MessageEvent, ReactionSummary, ReadReceipts } from './services/pubsub';
import type { ChatActivity } from './services/read-state.service';
import type { MessageSearchHit } from './services/search/message-search.service';

let lastTime = Number.NaN;
let lastTimestamp = '';

/**
 * `date.toISOString()`, remembering the last one: the messages stored in one batch share their
 * timestamp, and each delivered message (a `/ws` frame, a GraphQL `createdAt`) writes it out again.
 */
export function isoTimestamp(date: Date): string {
  const time = date.getTime();
  if (time !== lastTime) {
    lastTimestamp = date.toISOString();
    lastTime = time;
  }
  return lastTimestamp;
}

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

/** For messages that carry no attachment (a bot answer): no link is ever asked of it. */
const noAttachmentUrls: AttachmentUrls = { url: () => '' };

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

/** A message as both generations of clients read it: the seed's fields, and the later ones when they say something. */
export interface MessageJson {
  id: number;
  chat_id: number;
  user_id: number | null;
  username: string | null;
  content: string;
  is_bot: boolean;
  created_at: string;
  edited_at: string | null;
  reactions: ReturnType<typeof reactionsJson>;
  attachments: ReturnType<typeof attachmentJson>[];
  assistant_id?: number;
  thread_id?: number;
  sources?: AnswerSource[];
}

/**
 * A message in the original shapes, with its attachments. The later fields are there only when they
 * say something (`assistant_id` on an assistant's ask or answer, `thread_id` in a thread, `sources` on
 * a grounded answer), so what earlier clients read is unchanged. Set one by one rather than spread in:
 * every message delivered is built here, and each spread made and copied an object more.
 */
export function messageJson(
  message: Pick<MessageEvent, 'id' | 'chatId' | 'userId' | 'username' | 'content' | 'isBot' | 'createdAt' | 'editedAt' | 'reactions' | 'attachments'> &
    Partial<Pick<MessageEvent, 'assistantId' | 'threadId' | 'sources'>>,
  urls: AttachmentUrls,
): MessageJson {
  const json: MessageJson = {
    id: message.id,
    chat_id: message.chatId,
    user_id: message.userId,
    username: message.username,
    content: message.content,
    is_bot: message.isBot,
    created_at: isoTimestamp(message.createdAt),
    edited_at: message.editedAt?.toISOString() ?? null,
    reactions: reactionsJson(message.reactions),
    attachments: message.attachments.map((attachment) => attachmentJson(attachment, urls)),
  };
  if (message.assistantId != null) json.assistant_id = message.assistantId;
  if (message.threadId != null) json.thread_id = message.threadId;
  const sources = parseSources(message.sources);
  if (sources.length > 0) json.sources = sources;
  return json;
}

/**
 * What both generations of `/ws` clients read of a message: the seed's flat fields and the later nested
 * object, after the frame's `type` when it is one (a webhook's data has none, and JSON leaves it out).
 */
export function messageFrameFields(message: Parameters<typeof messageJson>[0], urls: AttachmentUrls, type?: 'message' | 'message_updated') {
  const nested = messageJson(message, urls);
  return {
    type,
    chat_id: nested.chat_id,
    message_id: nested.id,
    username: nested.username,
    content: nested.content,
    is_bot: nested.is_bot,
    created_at: nested.created_at,
    attachments: nested.attachments,
    message: nested,
  };
}

/** A step of a bot answer as `bot_stream` frames carry it: the seed's delta fields, and the nested message whose content is the whole text so far. */
export const botStreamFields = (event: BotStreamEvent, textSoFar: string, botName: string) => ({
  chat_id: event.chatId,
  message_id: event.messageId,
  chunk: event.chunk,
  is_complete: event.isComplete,
  ...(event.isComplete ? { full_response: event.fullResponse ?? '' } : {}),
  ...(event.error ? { error: event.error } : {}),
  ...(event.stopped ? { stopped: true } : {}),
  // Only with assistants, grounding and regeneration: the built-in bot's frames stay as they were.
  ...(event.assistantId === undefined ? {} : { assistant_id: event.assistantId }),
  ...(event.sources ? { sources: event.sources } : {}),
  ...(event.regenerating ? { regenerating: true } : {}),
  message: messageJson(
    {
      id: event.messageId,
      chatId: event.chatId,
      userId: null,
      username: event.assistantName ?? botName,
      ...(event.sources ? { sources: JSON.stringify(event.sources) } : {}),
      ...(event.assistantId === undefined ? {} : { assistantId: event.assistantId }),
      content: textSoFar,
      isBot: true,
      createdAt: event.createdAt,
      editedAt: null,
      // Nobody can react to an answer before it is complete, and an answer has no files.
      reactions: [],
      attachments: [],
    },
    noAttachmentUrls,
  ),
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

/** How a user can sign in: whether they have a password, and each linked provider. */
export const signInMethodsJson = (methods: SignInMethods) => ({
  has_password: methods.hasPassword,
  identities: methods.identities.map((identity) => ({ provider: identity.provider, email: identity.email, created_at: identity.createdAt.toISOString() })),
});

/** `GET /api/auth/me`: the caller, with their linked sign-in providers (the original's four fields first). */
export const meJson = (user: PublicUser, methods: SignInMethods) => ({ ...userJson(user), identities: signInMethodsJson(methods).identities });

/** A webhook as its owner sees it; the secret only in the creation's answer. */
export const webhookJson = (webhook: WebhookView) => ({
  id: webhook.id,
  chat_id: webhook.chatId,
  url: webhook.url,
  events: webhook.events,
  created_at: webhook.createdAt.toISOString(),
  enabled: webhook.disabledAt === null,
  disabled_at: webhook.disabledAt?.toISOString() ?? null,
  disabled_reason: webhook.disabledReason,
});

export const createdWebhookJson = (webhook: CreatedWebhook) => ({ ...webhookJson(webhook), secret: webhook.secret });

export const webhookDeliveryJson = (delivery: WebhookDeliveryView) => ({
  id: delivery.id,
  event: delivery.event,
  status: delivery.status,
  attempts: delivery.attempts,
  response_status: delivery.responseStatus,
  last_error: delivery.lastError,
  created_at: delivery.createdAt.toISOString(),
  next_attempt_at: delivery.nextAttemptAt?.toISOString() ?? null,
  delivered_at: delivery.deliveredAt?.toISOString() ?? null,
});

export const incomingHookJson = (hook: IncomingHookView) => ({ id: hook.id, chat_id: hook.chatId, name: hook.name, created_at: hook.createdAt.toISOString() });

export const createdIncomingHookJson = (hook: CreatedIncomingHook) => ({ ...incomingHookJson(hook), token: hook.token, url: `/api/hooks/${hook.token}` });

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
