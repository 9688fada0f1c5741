import { builder } from './builder';

export const MessageRef = builder.prismaObject('Message', {
  fields: (t) => ({
    id: t.exposeID('id'),
    chatId: t.exposeID('chatId'),
    content: t.exposeString('content'),
    isBot: t.exposeBoolean('isBot'),
    status: t.exposeString('status', { description: 'complete, or stopped for a bot answer cut short on request.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    user: t.relation('user', { nullable: true }),
    username: t.string({
      nullable: true,
      description: "The author's username; for bot messages, the bot's name (BOT_NAME).",
      select: { user: { select: { username: true } } },
      resolve: (message, _args, context) => (message.isBot ? context.services.messages.botName : (message.user?.username ?? null)),
    }),
  }),
});
