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
  editMessageInput,
  userIdInput,
  userSearchQuery,
  createWebhookInput,
  webhookIdInput,
  createIncomingHookInput,
  hookIdInput,
} from '../services/validation';
import { json, readBody } from './http';
import { MAX_AVATAR_BYTES, profileInput } from '../services/profile.service';
import { attachmentIdInput } from '../services/attachments/attachment.service';
import type { Download, UploadRequest } from '../services/attachments/attachment.service';
import {
  profileJson,
  attachmentJson,
  chatJson,
  chatListItemJson,
  meJson,
  createdWebhookJson,
  createdIncomingHookJson,
  incomingHookJson,
  messageJson,
  messageSearchHitJson,
  participantJson,
  reactionsJson,
  readReceiptsJson,
  userJson,
  webhookDeliveryJson,
  webhookJson,
} from '../serializers';
import {
  BEARER_SCHEME,
  attachmentSchema,
  profileSchema,
  chatSchema,
  chatListItemSchema,
  detailResponse,
  healthSchema,
  jsonResponse,
  markReadSchema,
  meSchema,
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
  createdWebhookSchema,
  createdIncomingHookSchema,
  incomingHookSchema,
  webhookDeliveriesSchema,
  webhookSchema,
} from './schemas';
import { MAX_WEBHOOKS_PER_CHAT } from '../services/webhooks/webhook.service';

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

export const publicRoute = (config: RouteConfig, handler: Handler): RestRoute => ({ route: createRoute(config), handler });

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
const webhookParams = chatIdInput.extend(webhookIdInput.shape);
const hookParams = chatIdInput.extend(hookIdInput.shape);
const notHookOwner = detailResponse('"Only the chat\'s owner can manage its hooks"');
const notChatOwner = detailResponse('"Only the chat\'s owner can manage its webhooks"');
const messageParams = chatIdInput.extend(messageIdInput.shape);

/** What both reaction routes answer besides their 200. */
const reactionRefusals = {
  403: notInChat,
  404: detailResponse('"Chat not found", or "Message not found": no such message in this chat\'s history'),
  422: validationErrorResponse,
  429: retryLaterResponse('"Too many reactions: …" (MESSAGE_RATE_LIMIT, MESSAGE_BURST)'),
  503: detailResponse('Redis is unreachable: nothing was changed, try again shortly'),
};

const uploadBody = {
  required: true,
  content: {
    'multipart/form-data': {
      schema: z.object({ file: z.any().openapi({ type: 'string', format: 'binary', description: 'The file; its type is read from its bytes' }) }),
    },
  },
};

/** What the upload services read of a request; its signal says when the client has gone. */
const uploadRequest = (request: Request): UploadRequest => ({ body: request.body, contentType: request.headers.get('content-type'), signal: request.signal });

/** Refused before any of the file was stored: too many uploads wait already, or this one waited too long. */
const uploadsBusy = retryLaterResponse('"Too many uploads at once: try again shortly" (MAX_CONCURRENT_UPLOADS, UPLOAD_QUEUE, UPLOAD_QUEUE_WAIT_MS)');

/** Ended mid-body: the client sent it slower than the minimum rate, and the rest of it is not read. */
const uploadTooSlow = detailResponse(
  '"The upload arrived too slowly: …" (UPLOAD_MIN_BYTES_PER_SECOND over UPLOAD_MIN_RATE_WINDOW_MS); nothing was stored, and the connection is closed',
  z.object({ Connection: z.literal('close') }),
);

/** The file's bytes with the headers that make a browser treat them safely: never sniffed, never run as a page. */
function downloadResponse({ attachment, range, body }: Download): Response {
  const media = attachment.kind === 'image' || attachment.kind === 'audio';
  const headers: Record<string, string> = {
    'Content-Type': attachment.contentType,
    'Content-Length': String(range ? range.end - range.start + 1 : attachment.size),
    'Content-Disposition': contentDisposition(media ? 'inline' : 'attachment', attachment.filename),
    'Accept-Ranges': 'bytes',
    // Images and audio render as media; anything else (a PDF, text) opened directly gets no scripts, no plugins, no origin.
    'Content-Security-Policy': media
      ? "default-src 'none'; img-src 'self'; media-src 'self'; frame-ancestors 'none'"
      : "default-src 'none'; sandbox; frame-ancestors 'none'",
    'Cache-Control': 'private, max-age=3600',
  };
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${attachment.size}`;
  return new Response(body, { status: range ? 206 : 200, headers });
}

/** RFC 6266: an ASCII fallback name and the exact one, percent-encoded. */
function contentDisposition(disposition: 'inline' | 'attachment', filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `${disposition}; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

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
    {
      method: 'get',
      path: '/api/auth/me',
      tags: ['auth'],
      summary: 'The caller',
      description: 'The caller, with their linked sign-in providers (`identities`, oldest first).',
      responses: { 200: jsonResponse(meSchema, 'The caller') },
    },
    async ({ services }, user) => json(meJson(user, await services.oauth.signInMethods(user.id))),
  ),
  authenticatedRoute(
    {
      method: 'patch',
      path: '/api/auth/me',
      tags: ['auth'],
      summary: 'Set your display name and bio',
      description: 'A field left out stays as it is; null or blank clears it. You and everyone who shares a chat with you are pushed `user_updated`.',
      request: { body: jsonBody(profileInput) },
      responses: { 200: jsonResponse(profileSchema, 'Your profile'), 413: tooLargeResponse, 422: validationErrorResponse },
    },
    async ({ request, services }, user) => json(profileJson(await services.profiles.update(user, await readBody(request)))),
  ),
  authenticatedRoute(
    {
      method: 'put',
      path: '/api/auth/me/avatar',
      tags: ['auth'],
      summary: 'Set your avatar',
      description: `An image (PNG, JPEG, GIF or WebP, read from its bytes) of at most ${MAX_AVATAR_BYTES} bytes: the raw bytes as the body, or a multipart part named \`file\`. Pushes \`user_updated\`.`,
      request: { body: { required: true, content: { 'image/*': { schema: z.any().openapi({ type: 'string', format: 'binary' }) }, ...uploadBody.content } } },
      responses: {
        200: jsonResponse(profileSchema, 'Your profile, with its new `avatar_url`'),
        408: uploadTooSlow,
        413: detailResponse(`"File too large: at most ${MAX_AVATAR_BYTES} bytes"`),
        415: detailResponse('Not an image on the list, or not the type it claims'),
        422: validationErrorResponse,
        503: uploadsBusy,
      },
    },
    async ({ request, services }, user) => json(profileJson(await services.profiles.setAvatar(user, uploadRequest(request)))),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/auth/me/avatar',
      tags: ['auth'],
      summary: 'Remove your avatar',
      responses: { 200: jsonResponse(profileSchema, 'Your profile, `avatar_url` null') },
    },
    async ({ services }, user) => json(profileJson(await services.profiles.deleteAvatar(user))),
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

  // After /api/users/search, which the router would otherwise read as a user id.
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/users/{user_id}',
      tags: ['users'],
      summary: "Someone's profile",
      request: { params: userIdInput },
      responses: { 200: jsonResponse(profileSchema, 'The profile'), 404: detailResponse('"User not found"'), 422: validationErrorResponse },
    },
    async ({ params, services }) => json(profileJson(await services.profiles.get(params.user_id))),
  ),
  publicRoute(
    {
      method: 'get',
      path: '/api/users/{user_id}/avatar',
      tags: ['users'],
      summary: "Someone's avatar image",
      description:
        'Public, like usernames, so an `<img>` loads it with no header; its URL (`avatar_url`) changes with each new avatar, so it is cached for good.',
      request: { params: userIdInput },
      responses: {
        200: { description: 'The image', content: { 'application/octet-stream': { schema: z.any().openapi({ type: 'string', format: 'binary' }) } } },
        404: detailResponse('"No avatar"'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }) => {
      const { contentType, body } = await services.profiles.avatar(params.user_id);
      return new Response(body, {
        headers: {
          'Content-Type': contentType,
          'Cache-Control': 'public, max-age=31536000, immutable',
          'Content-Security-Policy': "default-src 'none'; img-src 'self'; frame-ancestors 'none'",
          // Other sites may show avatars (the attachment links stay same-site).
          'Cross-Origin-Resource-Policy': 'cross-origin',
        },
      });
    },
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
      json(
        (await services.messages.history(user, params.chat_id, Object.fromEntries(url.searchParams))).map((message) =>
          messageJson(message, services.attachments),
        ),
      ),
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
    async ({ request, params, services }, user) =>
      json(messageJson(await services.messages.send(user, params.chat_id, await readBody(request)), services.attachments)),
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/attachments',
      tags: ['attachments'],
      summary: 'Upload a file to a chat, to send with a message',
      description:
        'One file in a `multipart/form-data` part named `file`. Its type is read from its bytes: PNG, JPEG, GIF, WebP, WebM, Ogg/Opus, MP3, WAV, M4A, PDF or plain UTF-8 text. ' +
        'Send it with `attachment_ids` on a message (once, in this chat, by you); one never sent is deleted after a day.',
      request: { params: chatIdInput, body: uploadBody },
      responses: {
        201: jsonResponse(attachmentSchema, 'Stored'),
        400: detailResponse('Not a multipart body with a part named "file"'),
        403: notInChat,
        404: chatNotFound,
        408: uploadTooSlow,
        413: detailResponse('"File too large: at most … bytes" (MAX_UPLOAD_BYTES)'),
        415: detailResponse('"Unsupported file type: …", or the bytes contradict the Content-Type the part claims'),
        422: validationErrorResponse,
        503: uploadsBusy,
      },
    },
    async ({ request, params, services }, user) =>
      json(attachmentJson(await services.attachments.upload(user, params.chat_id, uploadRequest(request)), services.attachments), 201),
  ),
  publicRoute(
    {
      method: 'get',
      path: '/api/attachments/{attachment_id}/content',
      tags: ['attachments'],
      summary: "An attachment's file",
      description:
        "With the signed link's `expires` and `signature` (an attachment's `url`), no header is needed; without them, a bearer token of a participant of the chat. " +
        'Images and audio are served inline, anything else as a download under a sandboxing CSP. A single `Range` is answered with 206.',
      security: [{}, { [BEARER_SCHEME]: [] }],
      request: {
        params: attachmentIdInput,
        query: z.object({ expires: z.string().optional(), signature: z.string().optional() }),
      },
      responses: {
        200: { description: 'The file', content: { 'application/octet-stream': { schema: z.any().openapi({ type: 'string', format: 'binary' }) } } },
        206: { description: 'The requested range (`Content-Range`)' },
        401: notAuthenticated,
        403: detailResponse('"This link is invalid or has expired", or "Not authorized" (not in the chat)'),
        404: detailResponse('"Attachment not found": never uploaded, or deleted with its message or chat'),
        416: detailResponse('"Range not satisfiable"'),
        422: validationErrorResponse,
      },
    },
    async ({ request, url, params, services }) => {
      const signed = url.searchParams.has('signature') || url.searchParams.has('expires');
      const access = signed
        ? { expires: url.searchParams.get('expires'), signature: url.searchParams.get('signature') }
        : { viewer: await services.auth.authenticate(bearerToken(request.headers.get('authorization'))) };
      return downloadResponse(await services.attachments.open(access, params.attachment_id, request.headers.get('range')));
    },
  ),
  authenticatedRoute(
    {
      method: 'patch',
      path: '/api/chats/{chat_id}/messages/{message_id}',
      tags: ['messages'],
      summary: 'Edit your message',
      description:
        'The same content rules as sending. The message gains `edited_at`; every participant is pushed `message_updated`. Editing a `/bot` ask does not ask again; the same content again changes nothing and pushes nothing.',
      request: { params: messageRefInput, body: jsonBody(editMessageInput) },
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
      json(messageJson(await services.messageChanges.edit(user, params.chat_id, params.message_id, await readBody(request)), services.attachments)),
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
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/webhooks',
      tags: ['webhooks'],
      summary: 'Add an outgoing webhook to a chat you own',
      description:
        'From now on each of the `events` in the chat is POSTed to `url`, signed with the `secret` this answer shows once (see the README for the ' +
        'scheme). Only https URLs, never to loopback, private, link-local or metadata addresses (checked again at each delivery, after DNS), unless ' +
        `the server runs with WEBHOOK_ALLOW_PRIVATE=1. A chat holds at most ${MAX_WEBHOOKS_PER_CHAT} webhooks.`,
      request: { params: chatIdInput, body: jsonBody(createWebhookInput) },
      responses: {
        201: jsonResponse(createdWebhookSchema, 'The webhook, with its secret'),
        400: detailResponse(`"This chat has ${MAX_WEBHOOKS_PER_CHAT} webhooks already: delete one before adding another"`),
        403: notChatOwner,
        404: chatNotFound,
        413: tooLargeResponse,
        422: validationErrorResponse,
      },
    },
    async ({ request, params, services }, user) => json(createdWebhookJson(await services.webhooks.create(user, params.chat_id, await readBody(request))), 201),
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/webhooks',
      tags: ['webhooks'],
      summary: "The chat's webhooks (without their secrets)",
      request: { params: chatIdInput },
      responses: { 200: jsonResponse(z.array(webhookSchema), 'Oldest first'), 403: notChatOwner, 404: chatNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => json((await services.webhooks.list(user, params.chat_id)).map(webhookJson)),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}/webhooks/{webhook_id}',
      tags: ['webhooks'],
      summary: 'Delete a webhook',
      description: 'Nothing more is sent to it, deliveries still pending included.',
      request: { params: webhookParams },
      responses: {
        200: jsonResponse(messageResultSchema('Webhook deleted'), 'Deleted'),
        403: notChatOwner,
        404: detailResponse('"Chat not found" or "Webhook not found"'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => {
      await services.webhooks.delete(user, params.chat_id, params.webhook_id);
      return json({ message: 'Webhook deleted' });
    },
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/webhooks/{webhook_id}/deliveries',
      tags: ['webhooks'],
      summary: "A webhook's state and its latest deliveries",
      description:
        'Newest first: each with its status, attempts and the last error. A webhook whose delivery kept failing for WEBHOOK_RETRY_WINDOW_MS ' +
        '(or whose address was refused, or that answered 410) is disabled, and `webhook.disabled_reason` says why.',
      request: { params: webhookParams, query: historyQuery },
      responses: {
        200: jsonResponse(webhookDeliveriesSchema, 'The webhook and its deliveries'),
        403: notChatOwner,
        404: detailResponse('"Chat not found" or "Webhook not found"'),
        422: validationErrorResponse,
      },
    },
    async ({ params, url, services }, user) => {
      const { webhook, deliveries } = await services.webhooks.deliveries(user, params.chat_id, params.webhook_id, Object.fromEntries(url.searchParams));
      return json({ webhook: webhookJson(webhook), deliveries: deliveries.map(webhookDeliveryJson) });
    },
  ),
  authenticatedRoute(
    {
      method: 'post',
      path: '/api/chats/{chat_id}/hooks',
      tags: ['incoming hooks'],
      summary: 'Create an incoming hook for a chat you own',
      description:
        'Whoever holds the token this answer shows once posts into the chat as `name` with `POST /api/hooks/{token}`, `/bot` asks included, until ' +
        'you revoke it.',
      request: { params: chatIdInput, body: jsonBody(createIncomingHookInput) },
      responses: {
        201: jsonResponse(createdIncomingHookSchema, 'The hook, with its token'),
        403: notHookOwner,
        404: chatNotFound,
        413: tooLargeResponse,
        422: validationErrorResponse,
      },
    },
    async ({ request, params, services }, user) =>
      json(createdIncomingHookJson(await services.incomingHooks.create(user, params.chat_id, await readBody(request))), 201),
  ),
  authenticatedRoute(
    {
      method: 'get',
      path: '/api/chats/{chat_id}/hooks',
      tags: ['incoming hooks'],
      summary: "The chat's incoming hooks (without their tokens)",
      request: { params: chatIdInput },
      responses: { 200: jsonResponse(z.array(incomingHookSchema), 'Oldest first'), 403: notHookOwner, 404: chatNotFound, 422: validationErrorResponse },
    },
    async ({ params, services }, user) => json((await services.incomingHooks.list(user, params.chat_id)).map(incomingHookJson)),
  ),
  authenticatedRoute(
    {
      method: 'delete',
      path: '/api/chats/{chat_id}/hooks/{hook_id}',
      tags: ['incoming hooks'],
      summary: 'Revoke an incoming hook',
      request: { params: hookParams },
      responses: {
        200: jsonResponse(messageResultSchema('Hook revoked'), 'Revoked: its token posts nothing more'),
        403: notHookOwner,
        404: detailResponse('"Chat not found" or "Hook not found"'),
        422: validationErrorResponse,
      },
    },
    async ({ params, services }, user) => {
      await services.incomingHooks.revoke(user, params.chat_id, params.hook_id);
      return json({ message: 'Hook revoked' });
    },
  ),
  publicRoute(
    {
      method: 'post',
      path: '/api/hooks/{token}',
      tags: ['incoming hooks'],
      summary: "Post into a chat through an incoming hook's token",
      description:
        "The message shows the hook's name as its `username` (and `user_id` null); everyone in the chat receives it as any message, and a " +
        '`/bot` ask is answered. Rate-limited as a user is (MESSAGE_RATE_LIMIT, BOT_RATE_LIMIT), each hook on its own.',
      request: { params: z.object({ token: z.string() }), body: jsonBody(sendMessageInput) },
      responses: {
        200: jsonResponse(messageSchema, 'The stored message'),
        404: detailResponse('"Unknown or revoked hook"'),
        413: tooLargeResponse,
        422: validationErrorResponse,
        429: retryLaterResponse('"Too many messages: …" (MESSAGE_RATE_LIMIT, MESSAGE_BURST) or "Too many /bot requests: …" (BOT_RATE_LIMIT)'),
        503: detailResponse('Redis is unreachable: nothing was stored, try again shortly'),
      },
    },
    async ({ request, params, services }) =>
      json(messageJson(await services.incomingHooks.post(params.token ?? '', await readBody(request)), services.attachments)),
  ),
];
