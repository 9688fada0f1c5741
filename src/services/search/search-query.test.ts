import { describe, expect, test } from 'bun:test';
import type { SearchQuery } from './search-query';
import { MAX_QUERY_WORDS, parseSearchQuery, WORD } from './search-query';

const clauses = (text: string) => (parseSearchQuery(text) as SearchQuery).clauses;
const refusal = (text: string) => (parseSearchQuery(text) as { error: string }).error;

describe('what a search may hold', () => {
  test('words, each required, in any script', () => {
    expect(clauses('lunch  Friday')).toEqual([
      { words: ['lunch'], prefix: false },
      { words: ['Friday'], prefix: false },
    ]);
    expect(clauses('Привет κόσμε 東京は日本 café 42')).toEqual(
      ['Привет', 'κόσμε', '東京は日本', 'café', '42'].map((word) => ({ words: [word], prefix: false })),
    );
    // A combining accent typed apart stays in its word.
    expect(clauses('cafe\u0301')).toEqual([{ words: ['cafe\u0301'], prefix: false }]);
  });

  test('"quoted words" are one phrase; operators and punctuation inside are words and separators', () => {
    expect(clauses('"fish and chips" tonight')).toEqual([
      { words: ['fish', 'and', 'chips'], prefix: false },
      { words: ['tonight'], prefix: false },
    ]);
    expect(clauses('"cats OR dogs"')).toEqual([{ words: ['cats', 'OR', 'dogs'], prefix: false }]);
    expect(clauses('"NEAR(a, b)"')).toEqual([{ words: ['NEAR', 'a', 'b'], prefix: false }]);
    // Quotes with no words in them add nothing.
    expect(clauses('"" "?!" word')).toEqual([{ words: ['word'], prefix: false }]);
  });

  test('a trailing * makes the last word a prefix, of a word or of a phrase', () => {
    expect(clauses('deplo*')).toEqual([{ words: ['deplo'], prefix: true }]);
    expect(clauses('"release not"*')).toEqual([{ words: ['release', 'not'], prefix: true }]);
    expect(clauses('ab**')).toEqual([{ words: ['ab'], prefix: true }]);
    // A star anywhere else is punctuation.
    expect(clauses('*ab a*b "x y" *')).toEqual([
      { words: ['ab'], prefix: false },
      { words: ['a', 'b'], prefix: false },
      { words: ['x', 'y'], prefix: false },
    ]);
  });

  test('other punctuation separates words as in the text: a token of several words is a phrase', () => {
    expect(clauses('e-mail john@example.com (optional) C++ 3.14 don’t')).toEqual([
      { words: ['e', 'mail'], prefix: false },
      { words: ['john', 'example', 'com'], prefix: false },
      { words: ['optional'], prefix: false },
      { words: ['C'], prefix: false },
      { words: ['3', '14'], prefix: false },
      { words: ['don', 't'], prefix: false },
    ]);
    // The engines' own operators are punctuation here: they never reach an engine as syntax.
    expect(clauses('content:secret a&b|c !x ^y <-> z:* {q} (w)')).toEqual([
      { words: ['content', 'secret'], prefix: false },
      { words: ['a', 'b', 'c'], prefix: false },
      { words: ['x'], prefix: false },
      { words: ['y'], prefix: false },
      { words: ['z'], prefix: false },
      { words: ['q'], prefix: false },
      { words: ['w'], prefix: false },
    ]);
  });

  test('operator words count only in capitals and alone: "or", "Not", "ORANGE", "NOTE" are words', () => {
    expect(clauses('or Not ORANGE NOTE android')).toHaveLength(5);
  });
});

describe('what it refuses, saying why', () => {
  test('nothing to search for', () => {
    for (const text of ['', '   ', '\t\n', '?!', '"', '""', '" "', '-', '*', '🙂 👍', '\u0301']) {
      const parsed = parseSearchQuery(text);
      expect('error' in parsed).toBe(true);
    }
    expect(refusal('  ')).toBe('The search has no words to look for');
    expect(refusal('... ---')).toBe('The search has no words to look for');
  });

  test('an unclosed quote', () => {
    expect(refusal('"fish and chips')).toBe('The search has an unclosed quote: close it, or leave quotes out');
    expect(refusal('a "b" "c')).toContain('unclosed quote');
  });

  test('AND, OR, NOT and NEAR in capitals, with a way out', () => {
    expect(refusal('cats OR dogs')).toBe('The search has no operators such as OR: every word must match. Put "OR" in quotes to search for the word');
    for (const text of ['a AND b', 'NOT spam', 'NEAR(a b)', 'x NEAR/2 y', 'OR']) expect(refusal(text)).toContain('no operators');
  });

  test('excluding words', () => {
    expect(refusal('deploy -staging')).toBe('The search cannot exclude words ("-word"): leave the minus out');
    expect(refusal('deploy -"staging env"')).toContain('cannot exclude');
    // A minus inside a word, or alone, is punctuation.
    expect(clauses('well-known - x')).toEqual([
      { words: ['well', 'known'], prefix: false },
      { words: ['x'], prefix: false },
    ]);
  });

  test('a prefix too short to be worth its cost', () => {
    expect(refusal('a*')).toBe('A prefix search needs at least 2 characters before "*": "a*" has fewer');
    expect(refusal('"big d"*')).toContain('"d*"');
    expect(clauses('東京*')).toEqual([{ words: ['東京'], prefix: true }]);
  });

  test('too many words', () => {
    expect(clauses(Array.from({ length: MAX_QUERY_WORDS }, (_, i) => `w${i}`).join(' '))).toHaveLength(MAX_QUERY_WORDS);
    expect(refusal(Array.from({ length: MAX_QUERY_WORDS + 1 }, (_, i) => `w${i}`).join(' '))).toBe(
      `The search has ${MAX_QUERY_WORDS + 1} words: at most ${MAX_QUERY_WORDS}`,
    );
    expect(refusal(`"${'w '.repeat(MAX_QUERY_WORDS + 1)}"`)).toContain('at most');
  });
});

test('random text: always an answer, and every word it keeps is a whole word (no quote, operator or space in it)', () => {
  const alphabet = [...'ab Z09"*-+()&|!^:<>{}~\'\\ \t\n.,;/@#', 'AND', 'OR', 'NOT', 'NEAR', 'é', '\u0301', 'Я', '東', '🙂', '\u200b', '\u0000', '\ud800'];
  let state = 0x5eed;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state;
  };
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    const text = Array.from({ length: next() % 24 }, () => alphabet[next() % alphabet.length]).join('');
    const parsed = parseSearchQuery(text);
    if ('error' in parsed) {
      expect(parsed.error.length).toBeGreaterThan(0);
      continue;
    }
    accepted++;
    for (const clause of parsed.clauses) {
      for (const word of clause.words) expect(word.match(WORD)).toEqual([word]);
    }
  }
  expect(accepted).toBeGreaterThan(1_000);
});
