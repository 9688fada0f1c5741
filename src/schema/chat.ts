import { VISIBLE_STATUSES } from '../services/room-feed';
import { batchLoader } from './batch';
import { builder } from './builder';
import { MessageRef } from './message';
import { UserRef } from './user';

const MESSAGES_PAGE = { defaultSize: 50, maxSize: 200 };

/** The viewer's unread count and last message of every chat in the response, loaded together. */
const chatActivity = batchLoader(async (context, chatIds: number[]) => context.services.readState.activity(await context.viewer(), chatIds));

export const ChatRef = builder.prismaObject('Chat', {
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name', { nullable: true }),
    isGroup: t.exposeBoolean('isGroup'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    owner: t.relation('owner'),
    participants: t.field({
      type: [UserRef],
      // `nestedSelection` plans the users' selection from the query, so the plugin knows the users
      // are loaded; a fixed `select` here made it fetch every participant a second time.
      select: (_args, _context, nestedSelection) => ({
        participants: { orderBy: { id: 'asc' }, select: { user: nestedSelection(true) } },
      }),
      resolve: (chat) => chat.participants.map((participant) => participant.user),
    }),
    // Relay connection ordered by id: `last`/`before` pages back from the newest, newest last.
    messages: t.relatedConnection('messages', { cursor: 'id', ...MESSAGES_PAGE, query: { where: { status: { in: VISIBLE_STATUSES } } } }),
    unreadCount: t.int({
      description: 'Messages by others after your read position.',
      resolve: async (chat, _args, context) => (await chatActivity(context)(chat.id))?.unreadCount ?? 0,
    }),
    lastMessage: t.field({
      type: MessageRef,
      nullable: true,
      resolve: async (chat, _args, context) => (await chatActivity(context)(chat.id))?.lastMessage ?? null,
    }),
    lastMessageTime: t.field({
      type: 'DateTime',
      nullable: true,
      resolve: async (chat, _args, context) => (await chatActivity(context)(chat.id))?.lastMessage?.createdAt ?? null,
    }),
  }),
});
