import { builder } from '../schema/builder';
import { BotStreamEventRef } from '../schema/events';
import { SHARED_RESULTS } from '../schema/shared-results';

builder.mutationField('stopBot', (t) =>
  t.boolean({
    description: "Stops the room's running bot answer; what it wrote so far is kept.",
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.bot.stop(await context.viewer(), args.chatId);
      return true;
    },
  }),
);

builder.subscriptionField('botStream', (t) =>
  t.field({
    type: BotStreamEventRef,
    extensions: SHARED_RESULTS,
    description: 'Bot answers in a room: the text so far of a running answer first, then deltas and a completion.',
    args: { chatId: t.arg.id({ required: true }) },
    subscribe: async (_root, args, context) => context.services.bot.subscribe(await context.viewer(), args.chatId),
    resolve: (event) => event,
  }),
);
