import { describe, expect, test } from 'bun:test';
import { AppError } from './errors';
import type { ValidationIssue } from './validation';
import {
  createAssistantInput,
  createChatInput,
  historyQuery,
  isOneEmoji,
  MAX_EMOJI_LENGTH,
  parseChatId,
  parseInput,
  registerInput,
  sendMessageInput,
} from './validation';

/** The issues `run` is refused with, as a 422 body lists them. */
function refusal(run: () => unknown): ValidationIssue[] {
  try {
    run();
  } catch (error) {
    if (error instanceof AppError && error.code === 'BAD_USER_INPUT') return error.detail as ValidationIssue[];
    throw error;
  }
  throw new Error('accepted');
}

describe('422 issues name what is wrong as FastAPI (Pydantic 2) does', () => {
  test.each([
    [
      'a query integer over its bound',
      () => parseInput(historyQuery, { limit: '201' }, 'query'),
      'less_than_equal',
      ['query', 'limit'],
      'Input should be less than or equal to 200',
    ],
    [
      'a query integer under its bound',
      () => parseInput(historyQuery, { limit: '0' }, 'query'),
      'greater_than_equal',
      ['query', 'limit'],
      'Input should be greater than or equal to 1',
    ],
    [
      'a string that is no integer',
      () => parseChatId('abc'),
      'int_parsing',
      ['path', 'chat_id'],
      'Input should be a valid integer, unable to parse string as an integer',
    ],
    [
      'a fraction for an integer',
      () => parseChatId(1.5),
      'int_from_float',
      ['path', 'chat_id'],
      'Input should be a valid integer, got a number with a fractional part',
    ],
    ['a boolean for an integer', () => parseChatId(true), 'int_type', ['path', 'chat_id'], 'Input should be a valid integer'],
    ['null for an integer', () => parseChatId(null), 'int_type', ['path', 'chat_id'], 'Input should be a valid integer'],
    ['nothing where an integer is required', () => parseChatId(undefined), 'missing', ['path', 'chat_id'], 'Field required'],
    ['a number for a string', () => parseInput(sendMessageInput, { content: 42 }), 'string_type', ['body', 'content'], 'Input should be a valid string'],
    [
      'a string for a list',
      () => parseInput(sendMessageInput, { content: 'x', attachment_ids: 'a' }),
      'list_type',
      ['body', 'attachment_ids'],
      'Input should be a valid list',
    ],
    [
      'a list too long',
      () => parseInput(sendMessageInput, { content: 'x', attachment_ids: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] }),
      'too_long',
      ['body', 'attachment_ids'],
      'List should have at most 10 items',
    ],
    [
      'a string for a body',
      () => parseInput(sendMessageInput, 'hello'),
      'model_attributes_type',
      ['body'],
      'Input should be a valid dictionary or object to extract fields from',
    ],
    [
      'a word for a boolean',
      () => parseInput(createChatInput, { is_group: 'maybe' }),
      'bool_parsing',
      ['body', 'is_group'],
      'Input should be a valid boolean, unable to interpret input',
    ],
    ['a number for a boolean', () => parseInput(createChatInput, { is_group: 2 }), 'bool_type', ['body', 'is_group'], 'Input should be a valid boolean'],
    [
      'a word for a number',
      () => parseInput(createAssistantInput, { name: 'helper', temperature: 'hot' }),
      'float_parsing',
      ['body', 'temperature'],
      'Input should be a valid number, unable to parse string as a number',
    ],
    [
      'a boolean for a number',
      () => parseInput(createAssistantInput, { name: 'helper', temperature: true }),
      'float_type',
      ['body', 'temperature'],
      'Input should be a valid number',
    ],
    [
      'a number over its bound',
      () => parseInput(createAssistantInput, { name: 'helper', temperature: 3 }),
      'less_than_equal',
      ['body', 'temperature'],
      'Input should be less than or equal to 2',
    ],
    [
      'a string too short',
      () => parseInput(registerInput, { username: 'ab', email: 'ab@example.com', password: 'password123' }),
      'string_too_short',
      ['body', 'username'],
      'String should have at least 3 characters',
    ],
    [
      'a string too long',
      () => parseInput(createAssistantInput, { name: 'x'.repeat(33) }),
      'string_too_long',
      ['body', 'name'],
      'String should have at most 32 characters',
    ],
  ])('%s', (_label, run, type, loc, msg) => {
    expect(refusal(run)).toEqual([{ type, loc, msg }]);
  });

  test('a rule of our own is a value_error', () => {
    expect(refusal(() => parseInput(sendMessageInput, { content: '   ' }))).toEqual([
      { type: 'value_error', loc: ['body', 'content'], msg: 'Message content must not be empty' },
    ]);
  });
});

describe('isOneEmoji', () => {
  test.each([
    ['an emoji', '👍'],
    ['a skin tone', '👍🏽'],
    ['a pictograph made emoji by VS16', '❤️'],
    ['a ZWJ family', '👩‍👩‍👧'],
    ['a kiss with two skin tones (15 UTF-16 units)', '👩🏻‍❤️‍💋‍👨🏼'],
    ['a ZWJ sequence with a direction', '🏃🏽‍♀️‍➡️'],
    ['a rainbow flag', '🏳️‍🌈'],
    ['a country flag', '🇺🇸'],
    ['a subdivision flag (tags)', '🏴󠁧󠁢󠁳󠁣󠁴󠁿'],
    ['a keycap', '1️⃣'],
    ['the # keycap', '#️⃣'],
    ['©️ as an emoji', '©️'],
    ['an emoji newer than most fonts', '🫨'],
  ])('accepts %s', (_label, emoji) => {
    expect(isOneEmoji(emoji)).toBe(true);
  });

  test.each([
    ['nothing', ''],
    ['a letter', 'a'],
    ['a word', 'ok'],
    ['a digit', '1'],
    ['digits', '12'],
    ['#', '#'],
    ['two emoji', '👍👍'],
    ['an emoji and a space', '👍 '],
    ['a space and an emoji', ' 👍'],
    ['a text-style heart (no VS16)', '❤'],
    ['a text-style ©', '©'],
    ['an emoji forced to text style (VS15)', '👍\uFE0E'],
    ['half a flag', '🇺'],
    ['a keycap without VS16', '1\u20E3'],
    ['a lone skin tone', '🏻'],
    ['a lone ZWJ', '\u200D'],
    ['a letter with a combining mark', 'x\u0303'],
    ['a ZWJ chain longer than any emoji', Array.from({ length: MAX_EMOJI_LENGTH }, () => '👍').join('\u200D')],
  ])('refuses %s', (_label, text) => {
    expect(isOneEmoji(text)).toBe(false);
  });
});
