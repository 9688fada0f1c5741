import type { RouteConfig } from '@hono/zod-openapi';
import { createRoute, z } from '@hono/zod-openapi';
import type { PublicUser } from '../services/auth.service';
import { bearerToken } from '../services/auth.service';
import type { Services } from '../services';
import { MAX_EMOJI_PER_MESSAGE } from '../services/reaction.service';
import {
  chatIdInput,
  createChatInput,
  historyQuery,
  inviteInput,
  loginInput,
  messageRefInput,
  messageSearchQuery,
  messageIdInput,
  reactionInput,
  registerInput,
  sendMessageInput,
  userIdInput,
  userSearchQuery,
} from '../services/validation';
import { json, readBody } from './http';
import { chatJson, chatListItemJson, messageJson, messageSearchHitJson, participantJson, reactionsJson, readReceiptsJson, userJson } from '../serializers';
import {
  BEARER_SCHEME,
  chatSchema,
  chatListItemSchema,
  detailResponse,
  healthSchema,
  jsonResponse,
  markReadSchema,
  messageSchema,
  messageResultSchema,
  messageSearchHitSchema,
  reactionsSchema,
  participantSchema,
  retryLaterResponse,
  readReceiptsSchema,
  tokenSchema,
  tooLargeResponse,
  unauthorizedResponse,
  userSchema,
  validationErrorResponse,
} from './schemas';

export interface RouteContext {
  request: Request;
  url: URL;
  /** The path's parameters, percent-decoded; a malformed escape stays as sent and fails validation (422). */
  params: Record<string, string>;
  services: Services;
  clientAddress: string | null;
}

type Handler = (context: RouteContext) => Promise<Response> | Response;

/** One REST route: its OpenAPI description and what answers it. */
export interface RestRoute {
  route: RouteConfig & { getRoutingPath(): string };
  handler: Handler;
}

const publicRoute = (config: RouteConfig, handler: Handler): RestRoute => ({ route: createRoute(config), handler });

const notAuthenticated = unauthorizedResponse('"Not authenticated" (no bearer token) or "Invalid authentication credentials"');

/** A route for a signed-in caller: the bearer token is checked before anything else, and the description says so. */
export const authenticatedRoute = (config: RouteConfig, handler: (context: RouteContext, user: PublicUser) => Promise<Response> | Response): RestRoute => ({
  route: createRoute({ ...config, security: [{ [BEARER_SCHEME]: [] }], responses: { ...config.responses, 401: notAuthenticated } }),
  handler: async (context) => handler(context, await context.services.auth.authenticate(bearerToken(context.request.headers.get('authorization')))),
});

export const jsonBody = (schema: z.ZodType) => ({ required: true, content: { 'application/json': { schema } } });

// Answers that several routes share.
export const chatNotFound = detailResponse('"Chat not found"');
export const notInChat = detailResponse('"Not authorized": the caller is not in the chat');
const hashBusy = retryLaterResponse('"Server busy, try again": too many logins and registrations are waiting for a password hash');

const participantParams = chatIdInput.extend(userIdInput.shape);
const messageParams = chatIdInput.extend(messageIdInput.shape);

/** What both reaction routes answer besides their 200. */
const reactionRefusals = {
  403: notInChat,
  404: detailResponse('"Chat not found", or "Message not found": no such message in this chat\'s history'),
  422: validationErrorResponse,
  429: retryLaterResponse('"Too many reactions: …" (MESSAGE_RATE_LIMIT, MESSAGE_BURST)'),
  503: detailResponse('Redis is unreachable: nothing was changed, try again shortly'),
};

/** The original FastAPI service's routes, path for path. */
export const restRoutes: RestRoute[] = [
  publicRoute(
    {
      method: 'get',
      path: '/health',
      tags: ['health'],
      summary: "The database's and the pub/sub's state",
      responses: {
        200: jsonResponse(healthSchema, 'Every dependency answers'),
        503: jsonResponse(healthSchema, 'A dependency is down: status "unhealthy"'),
      },
    },
    async ({ services }) => {
      const { healthy, ...dependencies } = await services.health();
      return json({ status: healthy ? 'healthy' : 'unhealthy', ...dependencies }, healthy ? 200 : 503);
    },
  ),

  publicRoute(
    {
      method: 'post',
      path: '/api/auth/register',
      tags: ['auth'],
      summary: 'Create an account',
      request: { body: jsonBody(registerInput) },
      responses: {
        200: jsonResponse(userSchema, 'The new user'),
        400: detailResponse('"Username already registered" or "Email already registered"'),
        413: tooLargeResponse,
        422: validationErrorResponse,
        429: retryLaterResponse('"Too many registrations from this address, try again later" (REGISTER_RATE_LIMIT)'),
        503: hashBusy,
      },
    },
    async ({ request, services, clientAddress }) => json(userJson(await services.auth.register(await readBody(request), clientAddress))),
  ),
  publicRoute(
    {
      method: 'post',
      path: '/api/auth/login',
      tags: ['auth'],
      summary: 'Get an access token',
      description: 'JSON, or the OAuth2 password form (`grant_type=password&username=…&password=…`). The token goes in `Authorization: Bearer <token>`.',
      request: {
        body: { required: true, content: { 'application/json': { schema: loginInput }, 'application/x-www-form-urlencoded': { schema: loginInput } } },
      },
      responses: {
        200: jsonResponse(tokenSchema, 'A bearer token, valid for TOKEN_EXPIRE_MINUTES'),
        401: unauthorizedResponse('"Incorrect username or password"'),
        413: tooLargeResponse,
        422: validationErrorResponse,
        429: retryLaterResponse('"Too many failed login attempts, try again later" (LOGIN_RATE_LIMIT)'),
        503: hashBusy,
      },
    },
    async ({ request, services, clientAddress }) => {
      const { token } = await services.auth.login(await readBody(request, { acceptForm: true }), clientAddress);
      return json({ access_token: token, token_type: 'bearer' });
    },
  ),
  authenticatedRoute(
    { method: 'get', path: '/api/auth/me', tags: ['auth'], summary: 'The caller', responses: { 200: jsonResponse(userSchema, 'The caller') } },
    (_context, user) => json(userJson(user)),
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/users/search',
      tags: ['users'],
      summary: 'Find people by username or email',
      description: 'Users whose username or email contains `query`, ignoring case, the caller left out; `[]` for a query under 2 characters.',
      request: { query: userSearchQuery },
      responses: { 200: jsonResponse(z.array(userSchema), 'The users found, at most `limit`'), 422: validationErrorResponse },
    },
    async ({ url, services }, user) => json((await services.users.search(user, Object.fromEntries(url.searchParams))).map(userJson)),
  ),

  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats',
      tags: ['chats'],
      summary: 'Create a chat',
      description:
        'The creator is a participant, then the named users (unknown names skipped), each told `chat_created`. An AI chat without a name is "AI Chat" and opens with the bot\'s greeting.',
      request: { body: jsonBody(createChatInput) },
      responses: { 200: jsonResponse(chatSchema, 'The new chat'), 413: tooLargeResponse, 422: validationErrorResponse },
    },
    async ({ request, services }, user) => json(chatJson(await services.chats.create(user, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats',
      tags: ['chats'],
      summary: "The caller's chats",
      description: 'Latest activity (last message, else creation) first.',
      responses: { 200: jsonResponse(z.array(chatListItemSchema), 'Each chat with what is unread in it and its last message') },
    },
    async ({ services }, user) => json((await services.chats.listWithActivity(user)).map(chatListItemJson)),
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}',
      tags: ['chats'],
      summary: 'One chat',
      request: { params: chatIdInput },
      responses: { 200: jsonResponse(chatSchema, 'The chat'), 403: notInChat, 404: chatNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => json(chatJson(await services.chats.get(user, params.chat_id))),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}',
      tags: ['chats'],
      summary: 'Delete a chat you own',
      description: 'Its messages and participants go with it; a running bot answer is stopped; every other participant is told `chat_deleted`.',
      request: { params: chatIdInput },
      responses: {
        200: jsonResponse(messageResultSchema('Chat deleted successfully'), 'Deleted'),
        403: detailResponse('"Only chat admin can delete chat"'),
        404: chatNotFound,
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => {
      await services.chats.delete(user, params.chat_id);
      return json({ message: 'Chat deleted successfully' });
    },
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/invite',
      tags: ['chats'],
      summary: 'Add someone to a chat you are in',
      request: { params: chatIdInput, body: jsonBody(inviteInput) },
      responses: {
        200: jsonResponse(
          z.strictObject({ message: z.string().openapi({ example: 'User jane invited to chat' }) }),
          'Invited; the invitee is told `chat_invite`',
        ),
        400: detailResponse('"User is already a participant"'),
        403: notInChat,
        404: detailResponse('"Chat not found" or "User not found"'),
        413: tooLargeResponse,
        422: validationErrorResponse,
      },
    },
    async ({ request, params, services }, user) => {
      const invitee = await services.chats.invite(user, params.chat_id, await readBody(request));
      return json({ message: `User ${invitee.username} invited to chat` });
    },
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/messages',
      tags: ['messages'],
      summary: "A page of the chat's history",
      description: 'The newest `limit` messages older than `before`, oldest first.',
      request: { params: chatIdInput, query: historyQuery },
      responses: { 200: jsonResponse(z.array(messageSchema), 'The messages'), 403: notInChat, 404: chatNotFound, 422: validationErrorResponse },
    },
    async ({ url, params, services }, user) =>
      json((await services.messages.history(user, params.chat_id, Object.fromEntries(url.searchParams))).map(messageJson)),
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/messages',
      tags: ['messages'],
      summary: 'Send a message',
      description:
        'Delivered to every participant like one sent over `/ws` or GraphQL; one starting with `/bot ` is answered by the bot in the room (`/bot @name …` and `@name …` by an assistant of that name). `thread_id` writes it under an earlier message.',
      request: { params: chatIdInput, body: jsonBody(sendMessageInput) },
      responses: {
        200: jsonResponse(messageSchema, 'The stored message'),
        403: notInChat,
        404: chatNotFound,
        413: tooLargeResponse,
        422: validationErrorResponse,
        429: retryLaterResponse(
          '"Too many messages: …" (MESSAGE_RATE_LIMIT), "Too many /bot requests: …" (BOT_RATE_LIMIT) or "This chat has used its … bot tokens for this month …" (BOT_ROOM_MONTHLY_TOKENS)',
        ),
        503: detailResponse('Redis is unreachable: nothing was stored, try again shortly'),
      },
    },
    async ({ request, params, services }, user) => json(messageJson(await services.messages.send(user, params.chat_id, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'patch',
      path: '/api/chats/{chat_id}/messages/{message_id}',
      tags: ['messages'],
      summary: 'Edit your message',
      description:
        'The same content rules as sending. The message gains `edited_at`; every participant is pushed `message_updated`. Editing a `/bot` ask does not ask again; the same content again changes nothing and pushes nothing.',
      request: { params: messageRefInput, body: jsonBody(sendMessageInput) },
      responses: {
        200: jsonResponse(messageSchema, 'The message as it is now'),
        403: detailResponse('"Not authorized" (not in the chat), "Only its author can edit a message" or "Bot answers cannot be edited"'),
        404: detailResponse('"Chat not found" or "Message not found" (never in this chat, or deleted)'),
        413: tooLargeResponse,
        422: validationErrorResponse,
        429: retryLaterResponse('"Too many messages: …" (MESSAGE_RATE_LIMIT, shared with sending)'),
        503: detailResponse('Redis is unreachable: nothing was changed, try again shortly'),
      },
    },
    async ({ request, params, services }, user) =>
      json(messageJson(await services.messageChanges.edit(user, params.chat_id, params.message_id, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/messages/{message_id}/reactions',
      tags: ['reactions'],
      summary: 'React to a message',
      description:
        "Adds the caller's reaction: one emoji (a ZWJ sequence or a skin tone counts as one). Every participant is told `reaction` (over `/ws`) " +
        'or `reactionChanged` (GraphQL); adding a reaction already there changes nothing and tells nobody. A message holds at most ' +
        `${MAX_EMOJI_PER_MESSAGE} different emoji (422 past that).`,
      request: { params: messageParams, body: jsonBody(reactionInput) },
      responses: { 200: jsonResponse(reactionsSchema, "The message's reactions"), 413: tooLargeResponse, ...reactionRefusals },
    },
    async ({ request, params, services }, user) =>
      json(reactionsJson(await services.reactions.add(user, params.chat_id, params.message_id, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}/messages/{message_id}/reactions/{emoji}',
      tags: ['reactions'],
      summary: 'Take back your reaction',
      description: 'The emoji goes URL-encoded (`%F0%9F%91%8D` for 👍). Removing a reaction that is not there changes nothing and tells nobody.',
      request: { params: messageParams.extend(reactionInput.shape) },
      responses: { 200: jsonResponse(reactionsSchema, "The message's reactions"), ...reactionRefusals },
    },
    async ({ params, services }, user) => json(reactionsJson(await services.reactions.remove(user, params.chat_id, params.message_id, params.emoji))),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}/messages/{message_id}',
      tags: ['messages'],
      summary: 'Delete a message: your own, or any in a chat you own',
      description:
        "Its text is erased and it leaves the history and the bot's context; every participant is pushed `message_deleted`. A `/bot` ask is withdrawn (a running answer to it is stopped); a bot answer being written is stopped. Deleting it again is 404.",
      request: { params: messageRefInput },
      responses: {
        200: jsonResponse(messageResultSchema('Message deleted successfully'), 'Deleted'),
        403: detailResponse('"Not authorized" (not in the chat) or "Only its author or the chat\'s owner can delete a message"'),
        404: detailResponse('"Chat not found" or "Message not found" (never in this chat, or deleted already)'),
        422: validationErrorResponse,
        429: retryLaterResponse('"Too many messages: …" (MESSAGE_RATE_LIMIT, shared with sending)'),
        503: detailResponse('Redis is unreachable: nothing was changed, try again shortly'),
      },
    },
    async ({ params, services }, user) => {
      await services.messageChanges.delete(user, params.chat_id, params.message_id);
      return json({ message: 'Message deleted successfully' });
    },
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/messages/search',
      tags: ['messages'],
      summary: "Search the messages of the caller's chats",
      description:
        'Every word of `q` must match, in any script, ignoring case and Latin accents; `"quoted words"` must follow each other; `word*` matches ' +
        'words that start so. Best matches first, then newest. Other punctuation separates words. Refused (422): nothing to search for, an ' +
        'unclosed quote, AND/OR/NOT/NEAR in capitals (quote them to search for the word), `-word`, a prefix under 2 characters, more ' +
        "than 16 words. `chat_id` searches one chat. For the next page pass `before` = the last hit's `message_id`.",
      request: { query: messageSearchQuery },
      responses: {
        200: jsonResponse(z.array(messageSearchHitSchema), 'The hits, at most `limit`'),
        403: notInChat,
        404: chatNotFound,
        422: validationErrorResponse,
      },
    },
    async ({ url, services }, user) => json((await services.search.search(user, Object.fromEntries(url.searchParams))).hits.map(messageSearchHitJson)),
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/participants',
      tags: ['chats'],
      summary: "The chat's participants",
      description:
        'In the order they joined, each with whether they are online (a socket open anywhere; offline once the last one has been closed for PRESENCE_GRACE_MS) and when they were last seen.',
      request: { params: chatIdInput },
      responses: { 200: jsonResponse(z.array(participantSchema), 'The participants'), 403: notInChat, 404: chatNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => json((await services.chats.participants(user, params.chat_id)).map(participantJson)),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}/participants/{user_id}',
      tags: ['chats'],
      summary: 'Remove someone from a chat you own',
      description: 'The removed user is told `removed_from_chat`, everyone still in the chat `user_left`.',
      request: { params: participantParams },
      responses: {
        200: jsonResponse(messageResultSchema('Participant removed successfully'), 'Removed'),
        400: detailResponse('"Cannot remove yourself. Use leave endpoint instead"'),
        403: detailResponse('"Only chat admin can remove participants"'),
        404: detailResponse('"Chat not found" or "User is not a participant"'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => {
      await services.chats.removeParticipant(user, params.chat_id, params.user_id);
      return json({ message: 'Participant removed successfully' });
    },
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/leave',
      tags: ['chats'],
      summary: 'Leave a chat',
      request: { params: chatIdInput },
      responses: {
        200: jsonResponse(messageResultSchema('Left chat successfully'), 'Left; everyone still in the chat is told `user_left`'),
        400: detailResponse('"Chat owner cannot leave. Delete the chat instead"'),
        404: detailResponse('"Chat not found" or "Not a participant"'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => {
      await services.chats.leave(user, params.chat_id);
      return json({ message: 'Left chat successfully' });
    },
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/mark-read',
      tags: ['read state'],
      summary: "Move the caller's read position to the newest message",
      description: 'When it moved, every participant is told `read_receipts_updated`.',
      request: { params: chatIdInput },
      responses: {
        200: jsonResponse(markReadSchema, 'Marked'),
        403: detailResponse('"Not authorized": the caller is not in the chat, or it does not exist'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => {
      await services.readState.markRead(user, params.chat_id);
      return json({ success: true, message: 'Chat marked as read' });
    },
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/read-receipts',
      tags: ['read state'],
      summary: "Who has read the chat's newest 50 messages",
      request: { params: chatIdInput },
      responses: {
        200: jsonResponse(readReceiptsSchema, 'For each message, its readers'),
        403: detailResponse('"Not authorized": the caller is not in the chat, or it does not exist'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => json(readReceiptsJson(await services.readState.receipts(user, params.chat_id))),
  ),
];
