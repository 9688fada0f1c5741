import { UserRef } from './user';
import type { BotStreamEvent, MessageChange, TypingEvent, UserEvent } from '../services/pubsub';
import type { ReadReceipt } from '../services/read-state.service';
import type { ViewerEvent } from '../services/chat.service';
import { AnswerSourceRef } from './assistant';
import { builder } from './builder';
import { ChatRef } from './chat';
import { eventMessage } from './event-message';
import { MessageRef, ReadReceiptRef } from './message';

export const TypingEventRef = builder.objectRef<TypingEvent>('TypingEvent').implement({
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    username: t.exposeString('username'),
  }),
});

export const BotStreamEventRef = builder.objectRef<BotStreamEvent>('BotStreamEvent').implement({
  description: 'One step of a bot answer: deltas while isComplete is false, then one completion.',
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    messageId: t.exposeID('messageId'),
    chunk: t.exposeString('chunk'),
    isComplete: t.exposeBoolean('isComplete'),
    fullResponse: t.exposeString('fullResponse', { nullable: true }),
    error: t.exposeString('error', { nullable: true }),
    stopped: t.boolean({ resolve: (event) => event.stopped ?? false }),
    assistantId: t.id({
      nullable: true,
      description: "The chat's assistant writing it; null for the built-in bot.",
      resolve: (event) => event.assistantId ?? null,
    }),
    assistantName: t.string({ nullable: true, resolve: (event) => event.assistantName ?? null }),
    sources: t.field({
      type: [AnswerSourceRef],
      nullable: true,
      description: "On a grounded answer's completion: the sources it drew on.",
      resolve: (event) => event.sources ?? null,
    }),
    regenerating: t.boolean({ description: 'The answer is being written again (regenerateAnswer).', resolve: (event) => event.regenerating ?? false }),
  }),
});

type ChangeOf<T extends MessageChange['kind']> = Extract<MessageChange, { kind: T }>;

const MessageUpdatedEventRef = builder.objectRef<ChangeOf<'updated'>>('MessageUpdatedEvent').implement({
  description: 'A message was edited: here it is as it is now.',
  fields: (t) => ({
    message: t.field({ type: MessageRef, resolve: (event, _args, context, info) => eventMessage(event.message, context, info) }),
  }),
});

const MessageDeletedEventRef = builder.objectRef<ChangeOf<'deleted'>>('MessageDeletedEvent').implement({
  description: 'A message was deleted: it is gone from the history, its text erased.',
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    messageId: t.exposeID('messageId'),
  }),
});

const messageChangeTypes = { updated: MessageUpdatedEventRef, deleted: MessageDeletedEventRef } as const;

export const MessageChangeEventRef = builder.unionType('MessageChangeEvent', {
  description: 'An edit or a deletion of a message in a chat.',
  types: Object.values(messageChangeTypes),
  resolveType: (change: MessageChange) => messageChangeTypes[change.kind],
});

type EventOf<T extends UserEvent['type']> = Extract<UserEvent, { type: T }>;

const ChatCreatedEventRef = builder.objectRef<EventOf<'chat_created'>>('ChatCreatedEvent').implement({
  description: 'You were added to a chat when it was created.',
  fields: (t) => ({
    chat: t.field({ type: ChatRef, resolve: (event) => event.chat }),
    addedBy: t.exposeString('addedBy'),
  }),
});

const ChatInviteEventRef = builder.objectRef<EventOf<'chat_invite'>>('ChatInviteEvent').implement({
  description: 'You were invited into a chat.',
  fields: (t) => ({
    chat: t.field({ type: ChatRef, resolve: (event) => event.chat }),
    invitedBy: t.exposeString('invitedBy'),
  }),
});

const RemovedFromChatEventRef = builder.objectRef<EventOf<'removed_from_chat'>>('RemovedFromChatEvent').implement({
  description: "The chat's owner removed you from it.",
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    chatName: t.exposeString('chatName', { nullable: true }),
    removedBy: t.exposeString('removedBy'),
  }),
});

const JoinedChatEventRef = builder.objectRef<EventOf<'joined_chat'>>('JoinedChatEvent').implement({
  description: 'You created the chat, from this or another session.',
  fields: (t) => ({ chat: t.field({ type: ChatRef, resolve: (event) => event.chat }) }),
});

const LeftChatEventRef = builder.objectRef<EventOf<'left_chat'>>('LeftChatEvent').implement({
  description: 'You are no longer in the chat: you left it (from this or another session), or deleted it.',
  fields: (t) => ({ chatId: t.exposeID('chatId') }),
});

const ChatDeletedEventRef = builder.objectRef<EventOf<'chat_deleted'>>('ChatDeletedEvent').implement({
  description: "The chat's owner deleted it.",
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    chatName: t.exposeString('chatName', { nullable: true }),
    deletedBy: t.exposeString('deletedBy'),
  }),
});

const ChatExitRef = builder.enumType('ChatExit', {
  description: 'How someone stopped being in a chat.',
  values: { REMOVED: { value: 'removed' }, LEFT: { value: 'left' } } as const,
});

const UserLeftEventRef = builder.objectRef<EventOf<'user_left'>>('UserLeftEvent').implement({
  description: 'Someone else is no longer in one of your chats.',
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    chatName: t.exposeString('chatName', { nullable: true }),
    userId: t.exposeID('userId'),
    username: t.exposeString('username'),
    how: t.expose('how', { type: ChatExitRef }),
  }),
});

const MessageReadReceiptsRef = builder.objectRef<{ messageId: string; readBy: ReadReceipt[] }>('MessageReadReceipts').implement({
  fields: (t) => ({
    messageId: t.exposeID('messageId'),
    readBy: t.field({ type: [ReadReceiptRef], resolve: (receipts) => receipts.readBy }),
  }),
});

const ReadReceiptsUpdatedEventRef = builder.objectRef<EventOf<'read_receipts_updated'>>('ReadReceiptsUpdatedEvent').implement({
  description: "Someone's read position moved in one of your chats: who has read each of its recent messages.",
  fields: (t) => ({
    chatId: t.exposeID('chatId'),
    receipts: t.field({
      type: [MessageReadReceiptsRef],
      resolve: (event) => Object.entries(event.receipts).map(([messageId, readBy]) => ({ messageId, readBy })),
    }),
  }),
});

const PresenceChangedEventRef = builder.objectRef<EventOf<'presence'>>('PresenceChangedEvent').implement({
  description: 'Someone who shares a chat with you came online (their first socket opened) or went offline (their last one closed PRESENCE_GRACE_MS ago).',
  fields: (t) => ({
    userId: t.exposeID('userId'),
    username: t.exposeString('username'),
    online: t.boolean({ resolve: (event) => event.status === 'online' }),
    lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime', nullable: true, description: 'When their last socket closed; null while they are online.' }),
  }),
});

const UserUpdatedEventRef = builder.objectRef<EventOf<'user_updated'>>('UserUpdatedEvent').implement({
  description: 'You, or someone who shares a chat with you, changed their display name, bio or avatar.',
  fields: (t) => ({
    user: t.field({ type: UserRef, resolve: (event) => event.user }),
  }),
});

const EventsMissedEventRef = builder.objectRef<Extract<ViewerEvent, { type: 'events_missed' }>>('EventsMissedEvent').implement({
  description:
    'The server lost its connection to the other instances for a while: events from `since` on may not have reached this subscription. Read again what you show (your chats, their read receipts, presence); messages are delivered to their subscriptions again.',
  fields: (t) => ({
    since: t.expose('since', { type: 'DateTime' }),
  }),
});

const viewerEventTypes = {
  chat_created: ChatCreatedEventRef,
  chat_invite: ChatInviteEventRef,
  removed_from_chat: RemovedFromChatEventRef,
  joined_chat: JoinedChatEventRef,
  left_chat: LeftChatEventRef,
  chat_deleted: ChatDeletedEventRef,
  user_left: UserLeftEventRef,
  read_receipts_updated: ReadReceiptsUpdatedEventRef,
  presence: PresenceChangedEventRef,
  user_updated: UserUpdatedEventRef,
  events_missed: EventsMissedEventRef,
} as const;

export const ViewerEventRef = builder.unionType('ViewerEvent', {
  description: 'Something that happened to one of your chats, or to the presence of someone you share a chat with.',
  types: Object.values(viewerEventTypes),
  resolveType: (event: ViewerEvent) => viewerEventTypes[event.type],
});
