import { builder } from '../schema/builder';
import { ChatRef } from '../schema/chat';

builder.queryFields((t) => ({
  chats: t.prismaField({
    type: [ChatRef],
    resolve: async (query, _root, _args, context) => context.services.chats.listFor(await context.viewer(), query),
  }),
  chat: t.prismaField({
    type: ChatRef,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, context) => context.services.chats.get(await context.viewer(), args.id, query),
  }),
}));

builder.mutationFields((t) => ({
  createChat: t.prismaField({
    type: ChatRef,
    args: { name: t.arg.string(), isGroup: t.arg.boolean() },
    resolve: async (query, _root, args, context) => {
      const viewer = await context.viewer();
      const created = await context.services.chats.create(viewer, { name: args.name, is_group: args.isGroup ?? false });
      return context.services.chats.get(viewer, created.id, query);
    },
  }),
  inviteUser: t.prismaField({
    type: ChatRef,
    args: { chatId: t.arg.id({ required: true }), username: t.arg.string({ required: true }) },
    resolve: async (query, _root, args, context) => {
      const viewer = await context.viewer();
      await context.services.chats.invite(viewer, args.chatId, { username: args.username });
      return context.services.chats.get(viewer, args.chatId, query);
    },
  }),
}));
