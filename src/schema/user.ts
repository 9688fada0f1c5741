import type { PublicUser } from '../services/auth.service';
import { avatarUrl, publicUserSelect } from '../services/auth.service';
import { AppError } from '../services/errors';
import type { UserPresence } from '../services/presence.service';
import { batchLoader } from './batch';
import { builder } from './builder';
import type { Context } from './context';

/**
 * The presence of every user in the response whom the viewer may see (themselves, and whoever shares
 * a chat with them), loaded together: one query and one store lookup, however many users a list has.
 * A result shared by a room's subscribers has no viewer to ask for, so it shows none.
 */
const presenceOf = batchLoader(async (context, userIds: number[]): Promise<Map<number, UserPresence>> => {
  if (context.shared) return new Map();
  const viewer = await context.viewer().catch((error: unknown) => {
    // Signed out (the user of `register` or `login`): nobody's presence to show.
    if (error instanceof AppError && error.code === 'UNAUTHENTICATED') return null;
    throw error;
  });
  return viewer ? context.services.presence.visibleTo(viewer, userIds) : new Map();
});

const presence = async (user: { id: number }, context: Context) => (await presenceOf(context)(user.id)) ?? null;

export const UserRef = builder.prismaObject('User', {
  // Loads the public columns only: a password hash never enters a GraphQL response's data.
  select: publicUserSelect,
  fields: (t) => ({
    id: t.exposeID('id'),
    username: t.exposeString('username'),
    email: t.exposeString('email'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    displayName: t.exposeString('displayName', { nullable: true, description: 'What to show instead of the username; null when unset.' }),
    bio: t.exposeString('bio', { nullable: true, description: 'What they say of themselves; null when unset.' }),
    avatarUrl: t.string({
      nullable: true,
      description: 'The avatar (path and query; public, and a new URL for each new avatar); null when unset.',
      resolve: (user) => avatarUrl(user),
    }),
    online: t.boolean({
      nullable: true,
      description:
        'Whether any of their sockets is open; null for someone who shares no chat with you, and in messageAdded results (shared by the room: read presence from participants and viewerEvents).',
      resolve: async (user, _args, context) => (await presence(user, context))?.online ?? null,
    }),
    lastSeenAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When their last socket closed; null while they are online, and where online is null.',
      resolve: async (user, _args, context) => (await presence(user, context))?.lastSeenAt ?? null,
    }),
  }),
});

export const AuthPayloadRef = builder.objectRef<{ token: string; user: PublicUser }>('AuthPayload').implement({
  fields: (t) => ({
    token: t.exposeString('token'),
    user: t.field({ type: UserRef, resolve: (payload) => payload.user }),
  }),
});
