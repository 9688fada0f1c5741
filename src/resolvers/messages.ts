import { GraphQLError } from 'graphql';
import { builder } from '../schema/builder';
import type { CatchUpEvent } from '../services/message.service';
import { CATCH_UP_LIMIT, isHistoryGap } from '../services/message.service';
import { TypingEventRef } from '../schema/events';
import { MessageRef } from '../schema/message';
import { eventRowHolds } from '../schema/event-rows';
import { SHARED_RESULTS } from '../schema/shared-results';

builder.mutationFields((t) => ({
  // The service returns the stored message with its author: no selection to pass down.
  sendMessage: t.field({
    type: MessageRef,
    args: { chatId: t.arg.id({ required: true }), content: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) => context.services.messages.send(await context.viewer(), args.chatId, { content: args.content }),
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
  messageAdded: t.prismaField({
    type: 'Message',
    description:
      'New messages in a chat. With `after` (the last message id you have), missed messages come first. When more than 1,000 were missed, ' +
      'the first event is an error with code HISTORY_GAP and `extensions.before`: the messages between `after` and `before` are not replayed; page them from `chat.messages`.',
    args: { chatId: t.arg.id({ required: true }), after: t.arg.id() },
    extensions: SHARED_RESULTS,
    subscribe: async (_root, args, context) => context.services.messages.subscribe(await context.viewer(), args.chatId, args.after),
    resolve: (query, event: CatchUpEvent, _args, context) => {
      if (isHistoryGap(event)) {
        throw new GraphQLError(`More than ${CATCH_UP_LIMIT} messages were missed: page the ones before ${event.before} from the history`, {
          extensions: { code: 'HISTORY_GAP', after: String(event.after), before: String(event.before) },
        });
      }
      // The event carries the message's columns and author: only what else the selection asks (read receipts) is loaded.
      return eventRowHolds(event, query) ? event : context.services.messages.reload(event.id, query);
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
