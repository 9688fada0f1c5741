import { builder } from '../schema/builder';
import { SignInMethodsRef } from '../schema/identity';

builder.queryField('oauthProviders', (t) =>
  t.stringList({
    description: 'The sign-in providers turned on: start one in a browser at /api/auth/oauth/{provider}/start.',
    resolve: (_root, _args, context) => context.services.oauth.enabledProviders(),
  }),
);

builder.mutationFields((t) => ({
  confirmOAuthLink: t.field({
    type: SignInMethodsRef,
    description:
      'Links the provider identity a sign-in callback answered a link token for (its verified email is yours). Single-use, valid 10 minutes, and only for the account it names.',
    args: { linkToken: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) => context.services.oauth.confirmLink(await context.viewer(), { link_token: args.linkToken }),
  }),
  unlinkOAuthProvider: t.field({
    type: SignInMethodsRef,
    description: 'Unlinks a provider from your account; refused when it is your last way to sign in (no password, no other provider).',
    args: { provider: t.arg.string({ required: true, description: 'google or github' }) },
    resolve: async (_root, args, context) => context.services.oauth.unlink(await context.viewer(), args.provider),
  }),
}));
