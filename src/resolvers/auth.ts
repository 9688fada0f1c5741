import { AuthPayloadRef, UserRef } from '../schema/user';
import { builder } from '../schema/builder';

builder.queryField('me', (t) =>
  t.field({
    type: UserRef,
    resolve: (_root, _args, context) => context.viewer(),
  }),
);

builder.mutationFields((t) => ({
  register: t.field({
    type: AuthPayloadRef,
    args: { username: t.arg.string({ required: true }), email: t.arg.string({ required: true }), password: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) => {
      const user = await context.services.auth.register(args, context.clientAddress);
      return { user, token: await context.services.auth.issueToken(user.id) };
    },
  }),
  login: t.field({
    type: AuthPayloadRef,
    args: { username: t.arg.string({ required: true }), password: t.arg.string({ required: true }) },
    resolve: (_root, args, context) => context.services.auth.login(args, context.clientAddress),
  }),
}));
