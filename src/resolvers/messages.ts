import { builder } from '../schema/builder';
import { MessageRef } from '../schema/message';

builder.mutationField('sendMessage', (t) =>
  t.prismaField({
    type: MessageRef,
    args: { chatId: t.arg.id({ required: true }), content: t.arg.string({ required: true }) },
    resolve: async (_query, _root, args, context) => context.services.messages.send(await context.viewer(), args.chatId, { content: args.content }),
  }),
);
