import { builder } from '../schema/builder';
import { TypingEventRef } from '../schema/events';
import { MessageRef } from '../schema/message';

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
  messageAdded: t.field({
    type: MessageRef,
    description: 'New messages in a chat. With `after` (the last message id you have), missed messages come first.',
    args: { chatId: t.arg.id({ required: true }), after: t.arg.id() },
    subscribe: async (_root, args, context) => context.services.messages.subscribe(await context.viewer(), args.chatId, args.after),
    resolve: (event) => event,
  }),
  typing: t.field({
    type: TypingEventRef,
    args: { chatId: t.arg.id({ required: true }) },
    subscribe: async (_root, args, context) => context.services.messages.subscribeTyping(await context.viewer(), args.chatId),
    resolve: (event) => event,
  }),
}));
