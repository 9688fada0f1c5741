import { VISIBLE_STATUSES } from '../services/room-feed';
import { builder } from './builder';
import { UserRef } from './user';

const MESSAGES_PAGE = { defaultSize: 50, maxSize: 200 };

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
  }),
});
