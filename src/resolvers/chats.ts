import { builder } from '../schema/builder';
import { ChatRef } from '../schema/chat';
import { ViewerEventRef } from '../schema/events';

builder.queryFields((t) => ({
  chats: t.prismaField({
    type: [ChatRef],
    description: 'Your chats, oldest first.',
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
    description: 'Creates a chat you own with the users `participantUsernames` names (unknown names are skipped); an AI chat opens with the bot greeting.',
    args: { name: t.arg.string(), isGroup: t.arg.boolean(), isAiChat: t.arg.boolean(), participantUsernames: t.arg.stringList() },
    resolve: async (query, _root, args, context) => {
      const viewer = await context.viewer();
      const created = await context.services.chats.create(viewer, {
        name: args.name,
        is_group: args.isGroup ?? false,
        is_ai_chat: args.isAiChat ?? false,
        participant_usernames: args.participantUsernames,
      });
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
  removeParticipant: t.boolean({
    description: "Removes someone from a chat you own (FORBIDDEN for anyone else's chat; use leaveChat for yourself).",
    args: { chatId: t.arg.id({ required: true }), userId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.chats.removeParticipant(await context.viewer(), args.chatId, args.userId);
      return true;
    },
  }),
  leaveChat: t.boolean({
    description: 'Leaves a chat you do not own (its owner deletes it instead).',
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.chats.leave(await context.viewer(), args.chatId);
      return true;
    },
  }),
  deleteChat: t.boolean({
    description: 'Deletes a chat you own with all its messages; a bot answer running in it is stopped.',
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.chats.delete(await context.viewer(), args.chatId);
      return true;
    },
  }),
  markChatRead: t.boolean({
    description: "Moves your read position to the chat's newest message; the participants hear of it only when it moved.",
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.services.readState.markRead(await context.viewer(), args.chatId);
      return true;
    },
  }),
}));

builder.subscriptionField('viewerEvents', (t) =>
  t.field({
    type: ViewerEventRef,
    description:
      'What happens to your chats: added, invited, removed, left, deleted, someone leaving, read receipts; and people you share a chat with coming online or going offline.',
    subscribe: async (_root, _args, context) => context.services.chats.events(await context.viewer()),
    resolve: (event) => event,
  }),
);
