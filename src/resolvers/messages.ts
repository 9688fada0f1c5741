import { GraphQLError } from 'graphql';
import { builder } from '../schema/builder';
import type { ChangeCatchUpEvent } from '../services/message-change.service';
import type { CatchUpEvent, HistoryGap } from '../services/message.service';
import { CATCH_UP_LIMIT, isHistoryGap } from '../services/message.service';
import { MessageChangeEventRef, TypingEventRef } from '../schema/events';
import { MessageRef } from '../schema/message';
import { eventMessage } from '../schema/event-message';
import { SHARED_RESULTS } from '../schema/shared-results';

builder.mutationFields((t) => ({
  // The service returns the stored message with its author: no selection to pass down.
  sendMessage: t.field({
    type: MessageRef,
    description:
      'Sends text, attachments (ids of your uploads to the chat, each sent once), or both: content may be empty when attachments are given. `threadId` writes it under an earlier message (an ask there puts that thread first in the answer’s context).',
    args: {
      chatId: t.arg.id({ required: true }),
      content: t.arg.string({ required: false, defaultValue: '' }),
      attachmentIds: t.arg.idList({ required: false, description: 'From POST /api/chats/{chat_id}/attachments.' }),
      threadId: t.arg.id(),
    },
    resolve: async (_root, args, context) =>
      context.services.messages.send(await context.viewer(), args.chatId, {
        content: args.content,
        attachment_ids: args.attachmentIds ?? [],
        thread_id: args.threadId ?? undefined,
      }),
  }),
  editMessage: t.field({
    type: MessageRef,
    description:
      'Rewrites your message (the rules of sending apply); everyone in the chat hears of it on messageChanged. The same content again changes nothing.',
    args: { chatId: t.arg.id({ required: true }), messageId: t.arg.id({ required: true }), content: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) =>
      context.services.messageChanges.edit(await context.viewer(), args.chatId, args.messageId, { content: args.content }),
  }),
  deleteMessage: t.boolean({
    description: 'Deletes your message, or any message of a chat you own; its text is erased. A /bot ask is withdrawn, a bot answer being written stopped.',
    args: { chatId: t.arg.id({ required: true }), messageId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.messageChanges.delete(await context.viewer(), args.chatId, args.messageId);
      return true;
    },
  }),
  sendTyping: t.boolean({
    description: 'Tells the room you are typing.',
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.messages.typing(await context.viewer(), args.chatId);
      return true;
    },
  }),
}));

builder.subscriptionFields((t) => ({
  messageAdded: t.field({
    type: MessageRef,
    description:
      'New messages in a chat. With `after` (the last message id you have), missed messages come first. When more than 1,000 were missed, ' +
      'the first event is an error with code HISTORY_GAP and `extensions.before`: the messages between `after` and `before` are not replayed; page them from `chat.messages`.',
    args: { chatId: t.arg.id({ required: true }), after: t.arg.id() },
    extensions: SHARED_RESULTS,
    subscribe: async (_root, args, context) => context.services.messages.subscribe(await context.viewer(), args.chatId, args.after),
    resolve: (event: CatchUpEvent, _args, context, info) => {
      if (isHistoryGap(event))
        throw historyGapError(event, `More than ${CATCH_UP_LIMIT} messages were missed: page the ones before ${event.before} from the history`);
      return eventMessage(event, context, info);
    },
  }),
  messageChanged: t.field({
    type: MessageChangeEventRef,
    description:
      'Edits and deletions in a chat. With `after` (the last message id you have), those made since that message existed come first, then live ones; ' +
      'subscribe with the same `after` as messageAdded to resume both. An update carries the whole message as it is now, so one received twice changes nothing; a deletion is final. ' +
      'When more than 1,000 were missed, the first event is an error with code HISTORY_GAP and `extensions.before`: reload the messages before it from `chat.messages`.',
    args: { chatId: t.arg.id({ required: true }), after: t.arg.id() },
    extensions: SHARED_RESULTS,
    subscribe: async (_root, args, context) => context.services.messageChanges.subscribe(await context.viewer(), args.chatId, args.after),
    resolve: (event: ChangeCatchUpEvent) => {
      if (isHistoryGap(event))
        throw historyGapError(event, `More than ${CATCH_UP_LIMIT} changes were missed: reload the messages before ${event.before} from the history`);
      return event;
    },
  }),
  typing: t.field({
    type: TypingEventRef,
    extensions: SHARED_RESULTS,
    args: { chatId: t.arg.id({ required: true }) },
    subscribe: async (_root, args, context) => context.services.messages.subscribeTyping(await context.viewer(), args.chatId),
    resolve: (event) => event,
  }),
}));

/** The first event of a catch-up that could not replay everything: the client reads the rest from the history. */
function historyGapError(gap: HistoryGap, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'HISTORY_GAP', after: String(gap.after), before: String(gap.before) } });
}
