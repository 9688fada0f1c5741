import { describe, expect, test } from 'bun:test';
import { isOneEmoji, MAX_EMOJI_LENGTH } from './validation';

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
