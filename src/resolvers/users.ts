import { builder } from '../schema/builder';
import { UserRef } from '../schema/user';

builder.queryField('searchUsers', (t) =>
  t.field({
    type: [UserRef],
    description: 'Users whose username or email contains `query`, ignoring case, you left out; none for a query under 2 characters.',
    args: { query: t.arg.string({ required: true }), limit: t.arg.int() },
    resolve: async (_root, args, context) => context.services.users.search(await context.viewer(), { query: args.query, limit: args.limit ?? undefined }),
  }),
);
