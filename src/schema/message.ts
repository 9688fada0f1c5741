import type { ReactionSummary } from '../services/pubsub';
import type { ReadReceipt } from '../services/read-state.service';
import { readersOf, readPositionSelect } from '../services/read-state.service';
import { batchLoader } from './batch';
import { builder } from './builder';
import { ReactionSummaryRef } from './reaction';
import { parseSources } from '../serializers';
import { AnswerSourceRef } from './assistant';
import { AttachmentRef } from './attachment';
import type { AttachmentView } from '../services/attachments/attachment.service';

export const ReadReceiptRef = builder.objectRef<ReadReceipt>('ReadReceipt').implement({
  description: 'A participant who has read a message: their read position is at or past it.',
  fields: (t) => ({
    userId: t.exposeID('userId'),
    username: t.exposeString('username'),
    readAt: t.expose('readAt', { type: 'DateTime', description: 'When the reader last moved their read position by marking the chat read.' }),
  }),
});

/** The reactions of every message in the response whose reactions did not come with it, loaded together. */
const messageReactions = batchLoader((context, messageIds: number[]) => context.services.reactions.summariesOf(messageIds));

/** The names of the assistants whose answers are in the response, loaded together (none for a page without any). */
const assistantNames = batchLoader((context, ids: number[]) => context.services.assistants.names(ids));

/** The attachments of every message in the response whose attachments did not come with it, loaded together. */
const messageAttachments = batchLoader((context, messageIds: number[]) => context.services.attachments.viewsOf(messageIds));

const carriedAttachments = (message: object): AttachmentView[] | undefined =>
  'attachments' in message && Array.isArray(message.attachments) ? (message.attachments as AttachmentView[]) : undefined;

/** Reactions a delivered message carries: a live event (none yet) or a history item (loaded with its page). */
const carriedReactions = (message: object): ReactionSummary[] | undefined =>
  'reactions' in message && Array.isArray(message.reactions) ? (message.reactions as ReactionSummary[]) : undefined;

export const MessageRef = builder.prismaObject('Message', {
  fields: (t) => ({
    id: t.exposeID('id'),
    chatId: t.exposeID('chatId'),
    content: t.exposeString('content'),
    isBot: t.exposeBoolean('isBot'),
    status: t.exposeString('status', { description: 'complete, or stopped for a bot answer cut short on request.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    editedAt: t.expose('editedAt', { type: 'DateTime', nullable: true, description: 'When its author last edited it; null if never.' }),
    user: t.relation('user', { nullable: true }),
    assistantId: t.exposeID('assistantId', {
      nullable: true,
      description: "An ask: the chat's assistant it addresses; an answer: the one that wrote it. null for the built-in bot.",
    }),
    threadId: t.exposeID('threadId', { nullable: true, description: 'Written under this earlier message (the first of its thread).' }),
    sources: t.field({
      type: [AnswerSourceRef],
      description: "A grounded answer's sources; empty for any other message.",
      resolve: (message) => parseSources(message.sources),
    }),
    username: t.string({
      nullable: true,
      description: "The author's username; for bot messages, their assistant's name, else the bot's (BOT_NAME); for an incoming hook's, the hook's name.",
      select: { senderName: true, user: { select: { username: true } } },
      // Synchronous unless an assistant's name must be loaded: one promise makes a shared subscription's
      // whole execution asynchronous, and then every subscriber awaits its payload (see deliverShared).
      resolve: (message, _args, context) => {
        if (!message.isBot) return message.user?.username ?? message.senderName ?? null;
        const { botName } = context.services.messages;
        if (message.assistantId === null) return botName;
        return assistantNames(context)(message.assistantId).then((name) => name ?? botName);
      },
    }),
    readBy: t.field({
      type: [ReadReceiptRef],
      description: 'Who has read this message, oldest read first; its author is left out.',
      // The chat's read positions come with the page of messages: one query for the page, not one per message.
      select: { chat: { select: { participants: { where: { lastReadAt: { not: null } }, select: readPositionSelect } } } },
      resolve: (message) => readersOf(message, message.chat.participants),
    }),
    reactions: t.field({
      type: [ReactionSummaryRef],
      description: 'Reactions by emoji, in first-use order.',
      // Synchronous when the event carries them (see username).
      resolve: (message, _args, context) => carriedReactions(message) ?? messageReactions(context)(message.id).then((reactions) => reactions ?? []),
    }),
    attachments: t.field({
      type: [AttachmentRef],
      description: 'The files sent with it, in order.',
      // Synchronous when the event carries them (see username).
      resolve: (message, _args, context) => carriedAttachments(message) ?? messageAttachments(context)(message.id).then((attachments) => attachments ?? []),
    }),
  }),
});
