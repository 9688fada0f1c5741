import { z } from 'zod';
import { AppError } from './errors';
import { MAX_QUERY_LENGTH, parseSearchQuery } from './search/search-query';

/**
 * Every input rule, declared once. REST bodies, GraphQL arguments and `/ws` frames are all
 * checked with these schemas through `parseInput`, so the transports cannot disagree.
 */
const MAX_ID = 2_147_483_647; // ids are 32-bit integers in both engines

/**
 * Pydantic's name and wording for a value of the wrong type, as FastAPI's 422 bodies give them: what
 * clients of the original may match on.
 */
const WRONG_TYPE = {
  int: { type: 'int_type', msg: 'Input should be a valid integer' },
  intParsing: { type: 'int_parsing', msg: 'Input should be a valid integer, unable to parse string as an integer' },
  intFromFloat: { type: 'int_from_float', msg: 'Input should be a valid integer, got a number with a fractional part' },
  float: { type: 'float_type', msg: 'Input should be a valid number' },
  floatParsing: { type: 'float_parsing', msg: 'Input should be a valid number, unable to parse string as a number' },
  string: { type: 'string_type', msg: 'Input should be a valid string' },
  bool: { type: 'bool_type', msg: 'Input should be a valid boolean' },
  boolParsing: { type: 'bool_parsing', msg: 'Input should be a valid boolean, unable to interpret input' },
  object: { type: 'model_attributes_type', msg: 'Input should be a valid dictionary or object to extract fields from' },
  list: { type: 'list_type', msg: 'Input should be a valid list' },
} as const;

/**
 * A whole number from a JSON number or a string of decimal digits (path segments, query strings
 * and GraphQL IDs are strings). Nothing else is read as one: `true`, `[1]`, `"0x1"`, `"1e3"`,
 * `" 1"` or `"1.0"` is a wrong type, not chat 1, as `z.coerce` would have it. Refused as Pydantic
 * names it: a string that is no integer is `int_parsing`, any other value `int_type`.
 */
const integer = (min: number, max: number) =>
  z.preprocess(
    (value, context) => {
      // A number is judged below (a fraction, the bounds); a value left out is reported as missing.
      if (typeof value === 'number' || value === undefined) return value;
      if (typeof value === 'string' && /^[+-]?\d+$/.test(value)) return Number(value);
      const refusal = typeof value === 'string' ? WRONG_TYPE.intParsing : WRONG_TYPE.int;
      context.addIssue({ code: 'custom', message: refusal.msg, params: { type: refusal.type }, input: value });
      return z.NEVER;
    },
    z.number().int().min(min, `Input should be greater than or equal to ${min}`).max(max, `Input should be less than or equal to ${max}`),
  );

export const idSchema = integer(1, MAX_ID);
/** A catch-up cursor: the last message id a client has, 0 for everything from the start. */
export const cursorSchema = integer(0, MAX_ID);

/**
 * Text that every engine stores exactly as sent. A lone surrogate is stored as U+FFFD, so the live
 * event (built from the input) and the history would disagree; PostgreSQL refuses NUL outright, in
 * a stored value or a lookup. Both are refused here, the same on every transport.
 */
export const storableText = (schema: z.ZodString) => storable(schema);
const storable = (schema: z.ZodString) =>
  schema
    .refine((text) => text.isWellFormed(), 'String should not contain unpaired surrogates')
    .refine((text) => !text.includes('\0'), 'String should not contain NUL characters');

export const usernameSchema = z
  .string()
  .trim()
  .min(3, 'String should have at least 3 characters')
  .max(32, 'String should have at most 32 characters')
  .regex(/^[A-Za-z0-9_.-]+$/, 'Username may contain only letters, digits, "_", "." and "-"');

export const passwordSchema = storable(z.string().min(8, 'String should have at least 8 characters').max(128, 'String should have at most 128 characters'));

export const emailSchema = z
  .string()
  .trim()
  .max(254, 'String should have at most 254 characters')
  .pipe(z.email('value is not a valid email address'))
  .transform((email) => email.toLowerCase());

/** A sign-in provider's name in a path: one this server knows, configured or not. */
export const oauthProviderInput = z.object({ provider: z.enum(['google', 'github'], "Input should be 'google' or 'github'") });

/** The link token a provider's callback answered, confirmed by the signed-in user it names. */
export const oauthLinkInput = z.object({
  link_token: z.string().min(1, 'String should have at least 1 character').max(256, 'String should have at most 256 characters'),
});

export const registerInput = z.object({ username: usernameSchema, email: emailSchema, password: passwordSchema });

// Login does not re-validate the username's shape: an unknown name is an ordinary failed login.
export const loginInput = z.object({ username: storable(z.string().max(128)), password: storable(z.string().max(128)) });

/** People added at creation: a bound, so one request cannot fan out to the whole user table. */
export const MAX_CREATION_PARTICIPANTS = 100;

export const createChatInput = z.object({
  name: storable(z.string().trim().max(100, 'String should have at most 100 characters'))
    .nullish()
    .transform((name) => name || null),
  is_group: z.boolean().default(false),
  is_ai_chat: z.boolean().default(false),
  participant_usernames: z
    .array(storable(z.string().max(128, 'String should have at most 128 characters')))
    .max(MAX_CREATION_PARTICIPANTS, `List should have at most ${MAX_CREATION_PARTICIPANTS} items`)
    .nullish()
    .transform((usernames) => usernames ?? []),
});

export const inviteInput = z.object({ username: storable(z.string().max(128)) });

export const userSearchQuery = z.object({
  query: storable(z.string().max(100, 'String should have at most 100 characters')),
  limit: integer(1, 100).default(10),
});

export const MAX_CONTENT_LENGTH = 10_000;

export const contentSchema = storable(z.string())
  .refine((content) => content.trim().length > 0, 'Message content must not be empty')
  .refine((content) => content.length <= MAX_CONTENT_LENGTH, `Message content must be at most ${MAX_CONTENT_LENGTH} characters`);

/** An assistant's name: `@name` addresses it, so it is one word, unique in its room regardless of case. */
export const assistantNameSchema = z
  .string()
  .trim()
  .min(1, 'String should have at least 1 character')
  .max(32, 'String should have at most 32 characters')
  .regex(/^[A-Za-z0-9_.-]+$/, 'Name may contain only letters, digits, "_", "." and "-"');

export const MAX_INSTRUCTIONS_LENGTH = 8_000;

const assistantFields = {
  name: assistantNameSchema,
  instructions: storable(z.string().max(MAX_INSTRUCTIONS_LENGTH, `String should have at most ${MAX_INSTRUCTIONS_LENGTH} characters`)),
  /** One of BOT_MODELS (checked by the service, which knows them); GEMINI_MODEL when left out. */
  model: z.string().max(100),
  temperature: z.number().min(0, 'Input should be greater than or equal to 0').max(2, 'Input should be less than or equal to 2').nullable(),
  answers_mentions: z.boolean(),
  grounding: z.boolean(),
  is_default: z.boolean(),
};

/** A new assistant: only its name is required. */
export const createAssistantInput = z.object({
  ...assistantFields,
  instructions: assistantFields.instructions.default(''),
  model: assistantFields.model.optional(),
  temperature: assistantFields.temperature.optional(),
  answers_mentions: assistantFields.answers_mentions.default(false),
  grounding: assistantFields.grounding.default(false),
  is_default: assistantFields.is_default.default(false),
});

/** A change to an assistant: the fields given change, the others stay. */
export const updateAssistantInput = z.object(assistantFields).partial();

/** An assistant of a chat named in a path or arguments. */
export const assistantRefInput = z.object({ chat_id: idSchema, assistant_id: idSchema });
export const parseAssistantRef = (chatId: unknown, assistantId: unknown) => {
  const ref = parseInput(assistantRefInput, { chat_id: chatId, assistant_id: assistantId }, 'path');
  return { chatId: ref.chat_id, assistantId: ref.assistant_id };
};

/** A usage report's period: `from` inclusive, `to` exclusive, ISO 8601; the current month by default. */
export const usageQuery = z.object({ from: z.iso.datetime({ offset: true }).optional(), to: z.iso.datetime({ offset: true }).optional() });
/** The content rules of an edit; a message sent with attachments may have no text (`sendMessageInput`). */
export const editMessageInput = z.object({ content: contentSchema });

/** What an incoming hook posts: text under the rules of an edit (a hook uploads no file). */
export const hookMessageInput = editMessageInput;

/** At most this many attachments on one message. */
export const MAX_ATTACHMENTS_PER_MESSAGE = 10;

export const attachmentIdsSchema = z
  .array(idSchema)
  .max(MAX_ATTACHMENTS_PER_MESSAGE, `List should have at most ${MAX_ATTACHMENTS_PER_MESSAGE} items`)
  .refine((ids) => new Set(ids).size === ids.length, 'Attachment ids must not repeat');

const optionalContent = storable(z.string()).refine(
  (content) => content.length <= MAX_CONTENT_LENGTH,
  `Message content must be at most ${MAX_CONTENT_LENGTH} characters`,
);

/**
 * What a message is sent with, every transport alike. `thread_id`: written under that earlier message of
 * the chat, whose thread then leads a bot answer's context.
 */
const sendFields = { content: optionalContent.default(''), attachment_ids: attachmentIdsSchema.default([]), thread_id: idSchema.nullish() };

/** Text, attachments (ids of the sender's uploads to the chat), or both: the text may be empty only with attachments. */
const needsTextOrFiles = (message: { content: string; attachment_ids: number[] }, context: z.RefinementCtx) => {
  if (message.attachment_ids.length === 0 && message.content.trim().length === 0) {
    context.addIssue({ code: 'custom', path: ['content'], message: 'Message content must not be empty' });
  }
};

export const sendMessageInput = z.object(sendFields).superRefine(needsTextOrFiles);

/**
 * Longer than any emoji people send (the longest standard ones, a kiss with two skin tones and a
 * subdivision flag, are 15 and 14 UTF-16 units), and checked before segmenting: a ZWJ chain of
 * pictographs is one grapheme however long it is.
 */
export const MAX_EMOJI_LENGTH = 32;

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
const FLAG = /^\p{Regional_Indicator}{2}$/u;
/** The fully qualified keycaps: 0️⃣–9️⃣, #️⃣, *️⃣. */
const KEYCAP = /^[0-9#*]\uFE0F\u20E3$/u;
/** Pictographs joined by ZWJ, with skin tones, presentation selectors and the tags of subdivision flags. */
const PICTOGRAPHS = /^\p{Extended_Pictographic}(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\u200D|\uFE0F|[\u{E0020}-\u{E007F}])*$/u;
/** Shown as an emoji rather than as text: "❤" and "©" are text symbols, "❤️" and "👍" emoji. */
const EMOJI_PRESENTATION = /\p{Emoji_Presentation}|\uFE0F/u;

/**
 * Exactly one emoji grapheme: a pictograph shown as emoji (with skin tones and ZWJ sequences), a
 * flag or a keycap. Text, digits, text-style symbols, two emoji or nothing are not one.
 * @example isOneEmoji('👩‍👩‍👧') // true; isOneEmoji('👍👍'), isOneEmoji('1'), isOneEmoji('ok') // false
 */
export function isOneEmoji(text: string): boolean {
  if (text.length === 0 || text.length > MAX_EMOJI_LENGTH) return false;
  // The first grapheme is the whole text: a tenth of the cost of listing the graphemes (JavaScriptCore's segmenter is slow to iterate).
  if (graphemes.segment(text).containing(0)?.segment.length !== text.length) return false;
  return FLAG.test(text) || KEYCAP.test(text) || (PICTOGRAPHS.test(text) && EMOJI_PRESENTATION.test(text));
}

export const emojiSchema = z.string().refine(isOneEmoji, 'Must be exactly one emoji, such as 👍');

export const reactionInput = z.object({ emoji: emojiSchema });

export const historyQuery = z.object({
  limit: integer(1, 200).default(50),
  before: idSchema.optional(),
});

/**
 * A message search: the words, in our own grammar (src/services/search/search-query.ts, which says
 * what it refuses and why), optionally one chat, and a page: `before` is the last hit of the page
 * before (a message id).
 */
export const messageSearchQuery = z.object({
  q: storable(z.string().max(MAX_QUERY_LENGTH, `String should have at most ${MAX_QUERY_LENGTH} characters`)).transform((text, context) => {
    const query = parseSearchQuery(text);
    if ('clauses' in query) return query;
    context.addIssue({ code: 'custom', message: query.error });
    return z.NEVER;
  }),
  chat_id: idSchema.optional(),
  limit: integer(1, 100).default(20),
  before: idSchema.optional(),
});

/** Frames a `/ws` client may send: the original protocol, plus `stop` for a running bot answer, `edit`/`delete` of a message and reactions. */
export const wsFrame = z.discriminatedUnion(
  'type',
  [
    z.object({ type: z.literal('join'), chat_id: idSchema, after: cursorSchema.optional() }),
    // What a frame carries besides its ids (a message's content, attachments and thread, an edit's content,
    // a reaction's emoji) is checked by the service, once, as on every transport: the adapter hands it the
    // frame as parsed. Other keys are passed over, not copied.
    z.object({ type: z.literal('message'), chat_id: idSchema }),
    z.object({ type: z.literal('regenerate'), chat_id: idSchema, message_id: idSchema }),
    z.object({ type: z.literal('typing'), chat_id: idSchema }),
    z.object({ type: z.literal('leave'), chat_id: idSchema }),
    z.object({ type: z.literal('stop'), chat_id: idSchema }),
    z.object({ type: z.literal('edit'), chat_id: idSchema, message_id: idSchema }),
    z.object({ type: z.literal('delete'), chat_id: idSchema, message_id: idSchema }),
    z.object({ type: z.literal('react'), chat_id: idSchema, message_id: idSchema }),
    z.object({ type: z.literal('unreact'), chat_id: idSchema, message_id: idSchema }),
  ],
  { error: 'Unknown message type' },
);
export type WsFrame = z.output<typeof wsFrame>;

/** The events an outgoing webhook can ask for. */
export const WEBHOOK_EVENTS = ['message.created', 'message.updated', 'message.deleted', 'bot.answer.completed', 'member.joined', 'member.left'] as const;
export const MAX_WEBHOOK_URL_LENGTH = 2048;

export const createWebhookInput = z.object({
  url: storable(z.string().min(1).max(MAX_WEBHOOK_URL_LENGTH)),
  events: z
    .array(z.enum(WEBHOOK_EVENTS, `Input should be one of ${WEBHOOK_EVENTS.join(', ')}`))
    .min(1, 'List should have at least 1 item')
    .refine((events) => new Set(events).size === events.length, 'Each event should be named once'),
});

export const webhookIdInput = z.object({ webhook_id: idSchema });
export const parseWebhookId = (value: unknown): number => parseInput(webhookIdInput, { webhook_id: value }, 'path').webhook_id;

/** An incoming hook's name: what its messages show as their author. */
export const createIncomingHookInput = z.object({ name: storable(z.string().trim().min(1, 'String should have at least 1 character').max(64)) });
export const hookIdInput = z.object({ hook_id: idSchema });
export const parseHookId = (value: unknown): number => parseInput(hookIdInput, { hook_id: value }, 'path').hook_id;

/**
 * The one id rule for a chat named in a path or an argument; errors locate it as `chat_id`. Built once:
 * zod compiles an object schema on first use, and this one is on every message's path.
 */
export const chatIdInput = z.object({ chat_id: idSchema });
export const parseChatId = (value: unknown): number => parseInput(chatIdInput, { chat_id: value }, 'path').chat_id;

/** A message of a chat named in a path or arguments; errors locate them as `chat_id` and `message_id`. */
export const messageRefInput = chatIdInput.extend({ message_id: idSchema });
export const parseMessageRef = (chatId: unknown, messageId: unknown) => {
  const ref = parseInput(messageRefInput, { chat_id: chatId, message_id: messageId }, 'path');
  return { chatId: ref.chat_id, messageId: ref.message_id };
};
/** A message named by id in a path or an argument; errors locate it as `message_id`. */
export const messageIdInput = z.object({ message_id: idSchema });
export const parseMessageId = (value: unknown): number => parseInput(messageIdInput, { message_id: value }, 'path').message_id;

/** A user named by id in a path or an argument; errors locate it as `user_id`. */
export const userIdInput = z.object({ user_id: idSchema });
export const parseUserId = (value: unknown): number => parseInput(userIdInput, { user_id: value }, 'path').user_id;

/** One entry of FastAPI's 422 body: `{"detail": [{type, loc, msg}]}`. */
export interface ValidationIssue {
  type: string;
  loc: (string | number)[];
  msg: string;
}

/** Parses `input` or throws BAD_USER_INPUT whose detail is FastAPI's list, located under `location`. */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, location: 'body' | 'query' | 'path' = 'body'): z.output<T> {
  // Zod leaves `input` out of issues unless asked; without it every wrong type would read as "missing".
  const result = schema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  const issues: ValidationIssue[] = result.error.issues.map((issue) => {
    const path = issue.path.map((key) => (typeof key === 'symbol' ? String(key) : key));
    // Judged on the input itself: coercing schemas turn a missing value into NaN before reporting.
    // A frame's missing `type` keeps the union's own "Unknown message type".
    const missing = issue.code !== 'invalid_union' && valueAt(input, path) === undefined;
    const { type, msg } = missing ? { type: 'missing', msg: 'Field required' } : pydanticIssue(issue);
    return { type, loc: [location, ...path], msg };
  });
  const summary = issues.map((issue) => (issue.loc.length > 1 ? `${issue.loc.slice(1).join('.')}: ${issue.msg}` : issue.msg)).join('; ');
  throw new AppError('BAD_USER_INPUT', summary, issues);
}

function valueAt(input: unknown, path: (string | number)[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

/** The refusal of `input` by a schema that expected `expected`: integers come from `integer`, which names its own. */
function wrongType(expected: string, input: unknown): { type: string; msg: string } | null {
  const isString = typeof input === 'string';
  if (expected === 'int') return WRONG_TYPE.intFromFloat;
  if (expected === 'number') return isString ? WRONG_TYPE.floatParsing : WRONG_TYPE.float;
  if (expected === 'string') return WRONG_TYPE.string;
  if (expected === 'boolean') return isString ? WRONG_TYPE.boolParsing : WRONG_TYPE.bool;
  if (expected === 'object') return WRONG_TYPE.object;
  if (expected === 'array') return WRONG_TYPE.list;
  return null;
}

/** Pydantic's name of a bound broken, by what was measured (a number's value, a string's or a list's length). */
function boundType(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const small = issue.code === 'too_small';
  if (issue.origin === 'string') return small ? 'string_too_short' : 'string_too_long';
  if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') {
    return `${small ? 'greater_than' : 'less_than'}${issue.inclusive ? '_equal' : ''}`;
  }
  return small ? 'too_short' : 'too_long';
}

/** The issue as FastAPI (Pydantic 2) would report it: its `type`, and its message when ours says less. */
function pydanticIssue(issue: z.core.$ZodIssue): { type: string; msg: string } {
  switch (issue.code) {
    case 'invalid_type':
      return wrongType(issue.expected, issue.input) ?? { type: `${issue.expected}_type`, msg: issue.message };
    case 'too_small':
    case 'too_big':
      return { type: boundType(issue), msg: issue.message };
    case 'invalid_value':
      return { type: 'enum', msg: issue.message };
    case 'custom': {
      const type: unknown = issue.params?.type;
      return { type: typeof type === 'string' ? type : 'value_error', msg: issue.message };
    }
    default:
      return { type: 'value_error', msg: issue.message };
  }
}
