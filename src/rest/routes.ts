import type { PublicUser } from '../services/auth.service';
import { bearerToken } from '../services/auth.service';
import type { Services } from '../services';
import { json, readBody } from './http';
import { chatJson, chatListItemJson, messageJson, readReceiptsJson, userJson } from '../serializers';

export interface RouteContext {
  request: Request;
  url: URL;
  params: Record<string, string>;
  services: Services;
  clientAddress: string | null;
}

type Handler = (context: RouteContext) => Promise<Response> | Response;

const authenticated =
  (handler: (context: RouteContext, user: PublicUser) => Promise<Response> | Response): Handler =>
  async (context) =>
    handler(context, await context.services.auth.authenticate(bearerToken(context.request.headers.get('authorization'))));

/** The original FastAPI service's routes, path for path. */
export const routes: [method: string, path: string, handler: Handler][] = [
  [
    'GET',
    '/health',
    async ({ services }) => {
      const { healthy, ...dependencies } = await services.health();
      return json({ status: healthy ? 'healthy' : 'unhealthy', ...dependencies }, healthy ? 200 : 503);
    },
  ],

  [
    'POST',
    '/api/auth/register',
    async ({ request, services, clientAddress }) => json(userJson(await services.auth.register(await readBody(request), clientAddress))),
  ],
  [
    'POST',
    '/api/auth/login',
    async ({ request, services, clientAddress }) => {
      const { token } = await services.auth.login(await readBody(request, { acceptForm: true }), clientAddress);
      return json({ access_token: token, token_type: 'bearer' });
    },
  ],
  ['GET', '/api/auth/me', authenticated((_context, user) => json(userJson(user)))],
  [
    'GET',
    '/api/users/search',
    authenticated(async ({ url, services }, user) => json((await services.users.search(user, Object.fromEntries(url.searchParams))).map(userJson))),
  ],

  ['POST', '/api/chats', authenticated(async ({ request, services }, user) => json(chatJson(await services.chats.create(user, await readBody(request)))))],
  ['GET', '/api/chats', authenticated(async ({ services }, user) => json((await services.chats.listWithActivity(user)).map(chatListItemJson)))],
  ['GET', '/api/chats/:id', authenticated(async ({ params, services }, user) => json(chatJson(await services.chats.get(user, params.id))))],
  [
    'DELETE',
    '/api/chats/:id',
    authenticated(async ({ params, services }, user) => {
      await services.chats.delete(user, params.id);
      return json({ message: 'Chat deleted successfully' });
    }),
  ],
  [
    'POST',
    '/api/chats/:id/invite',
    authenticated(async ({ request, params, services }, user) => {
      const invitee = await services.chats.invite(user, params.id, await readBody(request));
      return json({ message: `User ${invitee.username} invited to chat` });
    }),
  ],
  [
    'GET',
    '/api/chats/:id/messages',
    authenticated(async ({ url, params, services }, user) =>
      json((await services.messages.history(user, params.id, Object.fromEntries(url.searchParams))).map(messageJson)),
    ),
  ],
  [
    'POST',
    '/api/chats/:id/messages',
    authenticated(async ({ request, params, services }, user) => json(messageJson(await services.messages.send(user, params.id, await readBody(request))))),
  ],
  [
    'GET',
    '/api/chats/:id/participants',
    authenticated(async ({ params, services }, user) => json((await services.chats.participants(user, params.id)).map(userJson))),
  ],
  [
    'DELETE',
    '/api/chats/:id/participants/:user_id',
    authenticated(async ({ params, services }, user) => {
      await services.chats.removeParticipant(user, params.id, params.user_id);
      return json({ message: 'Participant removed successfully' });
    }),
  ],
  [
    'POST',
    '/api/chats/:id/leave',
    authenticated(async ({ params, services }, user) => {
      await services.chats.leave(user, params.id);
      return json({ message: 'Left chat successfully' });
    }),
  ],
  [
    'POST',
    '/api/chats/:id/mark-read',
    authenticated(async ({ params, services }, user) => {
      await services.readState.markRead(user, params.id);
      return json({ success: true, message: 'Chat marked as read' });
    }),
  ],
  [
    'GET',
    '/api/chats/:id/read-receipts',
    authenticated(async ({ params, services }, user) => json(readReceiptsJson(await services.readState.receipts(user, params.id)))),
  ],
];
