import type { PublicUser } from '../services/auth.service';
import { publicUserSelect } from '../services/auth.service';
import { builder } from './builder';

export const UserRef = builder.prismaObject('User', {
  // Loads the public columns only: a password hash never enters a GraphQL response's data.
  select: publicUserSelect,
  fields: (t) => ({
    id: t.exposeID('id'),
    username: t.exposeString('username'),
    email: t.exposeString('email'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

export const AuthPayloadRef = builder.objectRef<{ token: string; user: PublicUser }>('AuthPayload').implement({
  fields: (t) => ({
    token: t.exposeString('token'),
    user: t.field({ type: UserRef, resolve: (payload) => payload.user }),
  }),
});
