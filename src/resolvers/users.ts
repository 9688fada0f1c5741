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

builder.queryField('user', (t) =>
  t.field({
    type: UserRef,
    description: "Anyone's profile, as GET /api/users/{id}; NOT_FOUND for an id nobody has.",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => {
      await context.viewer();
      return context.services.profiles.get(args.id);
    },
  }),
);

builder.mutationField('updateProfile', (t) =>
  t.field({
    type: UserRef,
    description:
      'Sets your display name and bio, as PATCH /api/auth/me: an argument left out stays, null or blank clears it. Pushes `user_updated` to everyone who shares a chat with you. The avatar is set over REST (PUT /api/auth/me/avatar: an image upload).',
    args: { displayName: t.arg.string(), bio: t.arg.string() },
    resolve: async (_root, args, context) => context.services.profiles.update(await context.viewer(), { display_name: args.displayName, bio: args.bio }),
  }),
);

builder.mutationField('removeAvatar', (t) =>
  t.field({
    type: UserRef,
    description: 'Clears your avatar, as DELETE /api/auth/me/avatar.',
    resolve: async (_root, _args, context) => context.services.profiles.deleteAvatar(await context.viewer()),
  }),
);
