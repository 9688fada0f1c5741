import { builder } from './builder';

export const MessageRef = builder.prismaObject('Message', {
  fields: (t) => ({
    id: t.exposeID('id'),
    chatId: t.exposeID('chatId'),
    content: t.exposeString('content'),
    isBot: t.exposeBoolean('isBot'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    user: t.relation('user', { nullable: true }),
    username: t.string({
      nullable: true,
      select: { user: { select: { username: true } } },
      resolve: (message) => message.user?.username ?? null,
    }),
  }),
});
