import { AppError } from '../services/errors';
import type { LinkedIdentity, SignInMethods } from '../services/oauth/oauth.service';
import { batchLoader } from './batch';
import { builder } from './builder';

export const LinkedIdentityRef = builder.objectRef<LinkedIdentity>('LinkedIdentity').implement({
  description: 'A sign-in provider account linked to yours.',
  fields: (t) => ({
    provider: t.exposeString('provider', { description: 'google or github' }),
    email: t.exposeString('email', { nullable: true, description: 'The verified email the provider gave at the last sign-in.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

export const SignInMethodsRef = builder.objectRef<SignInMethods>('SignInMethods').implement({
  description: 'How you can sign in: a password, and each linked provider.',
  fields: (t) => ({
    hasPassword: t.exposeBoolean('hasPassword', { description: 'false for an account made by signing in with a provider' }),
    identities: t.field({ type: [LinkedIdentityRef], description: 'Linked providers, oldest first.', resolve: (methods) => methods.identities }),
  }),
});

/** The viewer's own sign-in methods, loaded once per request however many fields ask. */
const ownMethods = batchLoader(async (context, userIds: number[]): Promise<Map<number, SignInMethods>> => {
  if (context.shared) return new Map();
  const viewer = await context.viewer().catch((error: unknown) => {
    if (error instanceof AppError && error.code === 'UNAUTHENTICATED') return null;
    throw error;
  });
  if (!viewer || !userIds.includes(viewer.id)) return new Map();
  return new Map([[viewer.id, await context.services.oauth.signInMethods(viewer.id)]]);
});

builder.prismaObjectFields('User', (t) => ({
  identities: t.field({
    type: [LinkedIdentityRef],
    nullable: true,
    description: 'Your linked sign-in providers, oldest first; null for anyone but yourself.',
    resolve: async (user, _args, context) => (await ownMethods(context)(user.id))?.identities ?? null,
  }),
  signInMethods: t.field({
    type: SignInMethodsRef,
    nullable: true,
    description: 'How you can sign in (whether you have a password, and your providers); null for anyone but yourself.',
    resolve: async (user, _args, context) => (await ownMethods(context)(user.id)) ?? null,
  }),
}));
