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

export const answerSourceSchema = z.strictObject({ title: z.string(), url: z.string() }).openapi('AnswerSource');

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
    duration_ms: z.int().nullable().openapi({
      description:
        'Audio: as its container states it (WAV and WebM headers, the last Ogg page, MP3 frame counts or bitrate, M4A `mvhd`); null where it does not (browser-recorded WebM)',
    }),
  })
  .openapi('Attachment');

export const messageSchema = z
  .strictObject({
    id,
    chat_id: id,
    user_id: id.nullable().openapi({ description: "null for the bot and for an incoming hook's messages" }),
    username: z.string().openapi({ description: "The author's username; BOT_NAME for the bot; an incoming hook's name for its messages" }),
    content: z.string(),
    is_bot: z.boolean(),
    created_at: timestamp,
    edited_at: timestamp.nullable().openapi({ description: 'When its author last edited it (for an answer: when it was last regenerated); null if never' }),
    reactions: reactionsSchema,
    assistant_id: id
      .optional()
      .openapi({ description: "An ask: the room's assistant it addresses; an answer: the one that wrote it. Absent for the built-in bot" }),
    thread_id: id.optional().openapi({ description: 'Written under this earlier message (the first of its thread)' }),
    sources: z.array(answerSourceSchema).optional().openapi({ description: "A grounded answer's sources; absent when it has none" }),

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

export const linkedIdentitySchema = z
  .strictObject({
    provider: z.string().openapi({ description: 'google or github' }),
    email: z.string().nullable().openapi({ description: 'The verified email the provider gave at the last sign-in' }),
    created_at: timestamp,
  })
  .openapi('LinkedIdentity');

const signInMethodsShape = {
  has_password: z.boolean().openapi({ description: 'false for an account made by signing in with a provider' }),
  identities: z.array(linkedIdentitySchema).openapi({ description: 'Linked sign-in providers, oldest first' }),
};
export const signInMethodsSchema = z.strictObject(signInMethodsShape).openapi('SignInMethods');
export const meSchema = z.strictObject({ ...userShape, identities: signInMethodsShape.identities }).openapi('Me');

export const oauthSignedInSchema = z
  .strictObject({
    access_token: z.string(),
    token_type: z.literal('bearer'),
    user: userSchema,
    created: z.boolean().openapi({ description: 'Whether this sign-in made the account' }),
  })
  .openapi('OAuthSignedIn');

export const oauthLinkRequiredSchema = z
  .strictObject({
    detail: z.string(),
    link_required: z.literal(true),
    provider: z.string(),
    email: z.string().openapi({ description: "The provider's verified email, which an existing account has" }),
    link_token: z.string().openapi({ description: "Single-use, valid 10 minutes: the account's owner, signed in, confirms with `POST /api/auth/oauth/link`" }),
  })
  .openapi('OAuthLinkRequired');
const webhookEvent = z.enum(['message.created', 'message.updated', 'message.deleted', 'bot.answer.completed', 'member.joined', 'member.left']);
const webhookShape = {
  id,
  chat_id: id,
  url: z.string(),
  events: z.array(webhookEvent),
  created_at: timestamp,
  enabled: z.boolean().openapi({ description: 'false once it was disabled for failing: it receives nothing more' }),
  disabled_at: timestamp.nullable(),
  disabled_reason: z.string().nullable().openapi({ description: 'Why it was disabled; null while enabled' }),
};
export const webhookSchema = z.strictObject(webhookShape).openapi('Webhook');
export const createdWebhookSchema = z
  .strictObject({
    ...webhookShape,
    secret: z.string().openapi({ description: 'The key deliveries are signed with (HMAC-SHA256). Shown this once: keep it.' }),
  })
  .openapi('CreatedWebhook');
export const webhookDeliverySchema = z
  .strictObject({
    id: id.openapi({ description: "The delivery id: the body's `id` and the `X-Webhook-Id` header" }),
    event: webhookEvent,
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.int().min(0),
    response_status: z.int().nullable().openapi({ description: "The last attempt's HTTP status; null when it got no answer" }),
    last_error: z.string().nullable().openapi({ description: 'What went wrong with the last attempt (the start of the answer, a timeout, a refused address)' }),
    created_at: timestamp,
    next_attempt_at: timestamp.nullable().openapi({ description: 'When it will be tried again; null unless pending' }),
    delivered_at: timestamp.nullable(),
  })
  .openapi('WebhookDelivery');
export const webhookDeliveriesSchema = z.strictObject({ webhook: webhookSchema, deliveries: z.array(webhookDeliverySchema) }).openapi('WebhookDeliveries');

const incomingHookShape = { id, chat_id: id, name: z.string(), created_at: timestamp };
export const incomingHookSchema = z.strictObject(incomingHookShape).openapi('IncomingHook');
export const createdIncomingHookSchema = z
  .strictObject({
    ...incomingHookShape,
    token: z.string().openapi({ description: 'Posts into the chat as `name` until revoked. Shown this once: keep it secret.' }),
    url: z.string().openapi({ description: 'Where to POST `{"content": …}`: `/api/hooks/{token}`' }),
  })
  .openapi('CreatedIncomingHook');

export const assistantSchema = z
  .strictObject({
    id,
    chat_id: id,
    name: z.string().openapi({ description: 'Its display name: answers show it as their author; `@name` addresses it' }),
    instructions: z.string().openapi({ description: "The owner's instructions, sent as the model's system instruction" }),
    model: z.string().openapi({ description: 'One of BOT_MODELS' }),
    temperature: z.number().nullable().openapi({ description: "0 to 2; null for the model's default" }),
    answers_mentions: z.boolean().openapi({ description: 'Also answers messages starting with `@name`, not only `/bot @name …`' }),
    grounding: z.boolean().openapi({ description: 'Google Search grounding: answers carry their sources' }),
    is_default: z.boolean().openapi({ description: 'Answers a plain `/bot …` (without one marked, the oldest does)' }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('Assistant');

export const assistantMemorySchema = z
  .strictObject({
    assistant_id: id,
    summary: z.string().nullable().openapi({ description: "The model's summary of the room's older messages; null until there is one" }),
    up_to_message_id: id.nullable().openapi({ description: 'The newest message it covers' }),
    updated_at: timestamp.nullable(),
  })
  .openapi('AssistantMemory');

const usageTotals = {
  answers: z.int().min(0),
  prompt_tokens: z.int().min(0),
  answer_tokens: z.int().min(0),
  total_tokens: z.int().min(0).openapi({ description: 'As the model reported it (answers and memory summaries)' }),
  duration_ms: z.int().min(0),
};

export const usageSchema = z
  .strictObject({
    chat_id: id,
    from: timestamp,
    to: timestamp,
    total: z.strictObject(usageTotals),
    by_assistant: z.array(
      z.strictObject({ assistant_id: id.nullable().openapi({ description: 'null: the built-in bot' }), name: z.string().nullable(), ...usageTotals }),
    ),
    by_user: z.array(z.strictObject({ user_id: id, username: z.string().nullable(), ...usageTotals })),
  })
  .openapi('Usage');

export const answerVersionSchema = z
  .strictObject({ version: z.int().min(1), content: z.string(), sources: z.array(answerSourceSchema), created_at: timestamp })
  .openapi('AnswerVersion');
