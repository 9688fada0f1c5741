import type { RouteConfig } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';

/**
 * What the REST routes answer, for the OpenAPI document: the shapes `src/serializers.ts` writes and
 * the error bodies of `src/rest/http.ts`. Request shapes are not here: the routes describe their
 * inputs with the services' own schemas (src/services/validation.ts).
 */

type ResponseConfig = Exclude<RouteConfig['responses'][string], { $ref: string }>;

/** The security scheme every authenticated route names: `Authorization: Bearer <access_token from login>`. */
export const BEARER_SCHEME = 'bearerAuth';
export const bearerScheme = {
  type: 'http',
  scheme: 'bearer',
  bearerFormat: 'JWT',
  description: 'The `access_token` that `POST /api/auth/login` answers.',
} as const;

const id = z.int().min(1);
const timestamp = z.iso.datetime().openapi({ description: 'ISO 8601, UTC', example: '2026-01-02T03:04:05.678Z' });

const userShape = {
  id,
  username: z.string(),
  email: z.string(),
  created_at: timestamp,
  display_name: z.string().nullable().openapi({ description: 'What to show instead of the username; null when unset' }),
  avatar_url: z
    .string()
    .nullable()
    .openapi({ description: 'The avatar (path and query; public, cacheable for good: a new avatar has a new URL); null when unset' }),
};
export const userSchema = z.strictObject(userShape).openapi('User');
export const profileSchema = z.strictObject({ ...userShape, bio: z.string().nullable() }).openapi('Profile');
export const participantSchema = z
  .strictObject({
    ...userShape,
    online: z.boolean().openapi({ description: 'Whether any of their sockets (`/ws` or graphql-ws) is open, on any instance' }),
    last_seen_at: timestamp.nullable().openapi({ description: 'When their last socket closed; null while online, and for someone never seen' }),
  })
  .openapi('Participant');

const chatShape = { id, name: z.string().nullable(), owner_id: id, is_group: z.boolean(), created_at: timestamp };
export const chatSchema = z.strictObject(chatShape).openapi('Chat');
export const chatListItemSchema = z
  .strictObject({
    ...chatShape,
    unread_count: z.int().min(0).openapi({ description: 'Messages by others after your read position' }),
    last_message: z.string().nullable(),
    last_message_time: timestamp.nullable(),
  })
  .openapi('ChatListItem');

export const reactionSummarySchema = z
  .strictObject({
    emoji: z.string(),
    count: z.int().min(1),
    user_ids: z.array(id).openapi({ description: 'Who reacted with it, in the order they did' }),
  })
  .openapi('ReactionSummary');

export const reactionsSchema = z.array(reactionSummarySchema).openapi('Reactions', { description: "A message's reactions by emoji, in first-use order" });

export const attachmentSchema = z
  .strictObject({
    id,
    filename: z.string(),
    content_type: z.string().openapi({ description: 'Decided from the bytes, never from the client', example: 'image/png' }),
    size: z.int().min(1).openapi({ description: 'Bytes' }),
    kind: z.enum(['image', 'audio', 'pdf', 'file']),
    url: z.string().openapi({
      description:
        'A signed download link (path and query), valid one to two hours: works in an `<img>` or `<audio>` tag with no header. Read it again from the message for a fresh one.',
      example: '/api/attachments/7/content?expires=1767225600&signature=…',
    }),
    width: z.int().nullable().openapi({ description: 'Images: from the header; null otherwise' }),
    height: z.int().nullable(),
    duration_ms: z.int().nullable().openapi({ description: 'WAV audio: from the header; null for other formats (it would take decoding the file)' }),
  })
  .openapi('Attachment');

export const messageSchema = z
  .strictObject({
    id,
    chat_id: id,
    user_id: id.nullable().openapi({ description: 'null for the bot' }),
    username: z.string().openapi({ description: "The author's username; BOT_NAME for the bot" }),
    content: z.string(),
    is_bot: z.boolean(),
    created_at: timestamp,
    edited_at: timestamp.nullable().openapi({ description: 'When its author last edited it; null if never' }),
    reactions: reactionsSchema,
    attachments: z.array(attachmentSchema).openapi({ description: 'The files sent with it, in order' }),
  })
  .openapi('Message');

export const messageSearchHitSchema = z
  .strictObject({
    chat_id: id,
    message_id: id,
    username: z.string().nullable().openapi({ description: "The author's username; BOT_NAME for the bot" }),
    content: z.string().openapi({ description: 'The whole message, as sent' }),
    created_at: timestamp,
    snippet: z.string().openapi({
      description: 'The text around the first match, HTML-escaped, each match between `<mark>` and `</mark>`, `…` where text was cut',
      example: 'Lunch at the <mark>fish</mark> &amp; chips place?',
    }),
  })
  .openapi('MessageSearchHit');

export const readReceiptsSchema = z
  .record(z.string().openapi({ description: 'A message id' }), z.array(z.strictObject({ user_id: id, username: z.string(), read_at: timestamp })))
  .openapi('ReadReceipts', { description: "Who has read each of the chat's newest 50 messages, oldest read first" });

export const tokenSchema = z.strictObject({ access_token: z.string(), token_type: z.literal('bearer') }).openapi('Token');

export const healthSchema = z
  .strictObject({
    status: z.enum(['healthy', 'unhealthy']),
    database: z.enum(['ok', 'unreachable']),
    pubsub: z.enum(['local', 'ready', 'connecting', 'unreachable']).openapi({ description: '"local" without Redis' }),
  })
  .openapi('Health');

/** `{"message": "..."}`: what the original answers for an action that returns nothing else. */
export const messageResultSchema = (message: string) => z.strictObject({ message: z.literal(message) });

export const markReadSchema = z.strictObject({ success: z.literal(true), message: z.literal('Chat marked as read') });

const errorDetail = z.strictObject({ detail: z.string() }).openapi('ErrorDetail');

// FastAPI's names, so a client generated for the original finds the same components.
const validationIssue = z
  .strictObject({ type: z.string(), loc: z.array(z.union([z.string(), z.int()])), msg: z.string() })
  .openapi('ValidationError', { example: { type: 'missing', loc: ['body', 'password'], msg: 'Field required' } });
const validationError = z.strictObject({ detail: z.array(validationIssue) }).openapi('HTTPValidationError');

/** A JSON response of `schema`. */
export const jsonResponse = (schema: z.ZodType, description: string): ResponseConfig => ({
  description,
  content: { 'application/json': { schema } },
});

/** An error answered as `{"detail": "<message>"}`; `description` names the messages. */
export const detailResponse = (description: string, headers?: ResponseConfig['headers']): ResponseConfig => ({
  ...jsonResponse(errorDetail, description),
  ...(headers ? { headers } : {}),
});

/** A 401 with the challenge FastAPI's OAuth2 scheme sends. */
export const unauthorizedResponse = (description: string) => detailResponse(description, z.object({ 'WWW-Authenticate': z.literal('Bearer') }));

export const validationErrorResponse = jsonResponse(validationError, "FastAPI's list of what is wrong with the input, each located by `loc`");

/** A refusal that says when to try again (a 429, or a 503 when the server is busy). */
export const retryLaterResponse = (description: string) =>
  detailResponse(description, z.object({ 'Retry-After': z.string().openapi({ description: 'Seconds to wait' }) }));

export const tooLargeResponse = detailResponse('"Request body too large": over 1 MiB');
