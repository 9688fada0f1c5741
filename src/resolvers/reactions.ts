import { builder } from '../schema/builder';
import { ReactionEventRef, ReactionSummaryRef } from '../schema/reaction';
import { SHARED_RESULTS } from '../schema/shared-results';

const reactionArgs = builder.args((t) => ({
  chatId: t.id({ required: true }),
  messageId: t.id({ required: true }),
  emoji: t.string({ required: true, description: 'Exactly one emoji, such as 👍 (a ZWJ sequence or a skin tone counts as one).' }),
}));

builder.mutationFields((t) => ({
  addReaction: t.field({
    type: [ReactionSummaryRef],
    description: "Adds your reaction to a message and answers the message's reactions; adding one already there changes nothing.",
    args: reactionArgs,
    resolve: async (_root, args, context) => context.services.reactions.add(await context.viewer(), args.chatId, args.messageId, { emoji: args.emoji }),
  }),
  removeReaction: t.field({
    type: [ReactionSummaryRef],
    description: "Takes back your reaction and answers the message's reactions; removing one that is not there changes nothing.",
    args: reactionArgs,
    resolve: async (_root, args, context) => context.services.reactions.remove(await context.viewer(), args.chatId, args.messageId, args.emoji),
  }),
}));

builder.subscriptionFields((t) => ({
  reactionChanged: t.field({
    type: ReactionEventRef,
    description: 'Reactions added to and removed from the messages of a chat, until you are no longer in it.',
    args: { chatId: t.arg.id({ required: true }) },
    extensions: SHARED_RESULTS,
    subscribe: async (_root, args, context) => context.services.reactions.subscribe(await context.viewer(), args.chatId),
    resolve: (event) => event,
  }),
}));
