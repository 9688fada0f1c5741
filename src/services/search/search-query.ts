/**
 * What a user types into message search, read by our own grammar: nothing typed reaches either
 * engine's query syntax. The result is a list of clauses that must all match; each engine rebuilds
 * its own syntax from it, quoting every word (src/services/search/engines.ts).
 *
 * - `word`: the word, in any script, ignoring case and Latin diacritics (as the index does);
 * - `"two words"`: the words next to each other, in that order;
 * - `prefix*`, `"a phrase end*"`: the last word may start with what is typed;
 * - any other punctuation separates words, as it does in the text (`e-mail` is the phrase "e mail").
 *
 * Refused, with a reason a person can act on: nothing to search for, an unclosed quote, the operators
 * AND, OR, NOT and NEAR in capitals (every word must match; quoted, they are words), `-word`
 * (excluding is not supported), a prefix under MIN_PREFIX characters, too many words.
 */

/** Words, in any script: a letter or digit, then letters, digits and combining marks (accents typed apart, vowel signs). */
export const WORD = /[\p{L}\p{N}][\p{L}\p{N}\p{M}]*/gu;

export const MAX_QUERY_LENGTH = 256;
export const MAX_QUERY_WORDS = 16;
/** A shorter prefix matches most of the index: no answer worth its cost. */
export const MIN_PREFIX = 2;

/** Consecutive words that must appear in this order; `prefix`: the last one may start with what was typed. */
export interface SearchClause {
  words: string[];
  prefix: boolean;
}

/** Every clause must match. */
export interface SearchQuery {
  clauses: SearchClause[];
}

const OPERATORS = new Set(['AND', 'OR', 'NOT', 'NEAR']);

/** The query, or why it cannot be searched for. */
export function parseSearchQuery(text: string): SearchQuery | { error: string } {
  const clauses: SearchClause[] = [];
  let at = 0;
  while (at < text.length) {
    const char = text[at]!;
    if (/\s/u.test(char)) {
      at++;
    } else if (char === '"') {
      const close = text.indexOf('"', at + 1);
      if (close === -1) return { error: 'The search has an unclosed quote: close it, or leave quotes out' };
      const prefix = text[close + 1] === '*';
      const clause = clauseOf(text.slice(at + 1, close), prefix);
      if (clause) clauses.push(clause);
      at = close + (prefix ? 2 : 1);
    } else {
      const end = text.slice(at).search(/[\s"]/u);
      const token = end === -1 ? text.slice(at) : text.slice(at, at + end);
      at += token.length;
      const refusal = operatorIn(token, text[at] === '"');
      if (refusal) return { error: refusal };
      const clause = clauseOf(token, /[\p{L}\p{N}\p{M}]\*+$/u.test(token));
      if (clause) clauses.push(clause);
    }
  }
  if (clauses.length === 0) return { error: 'The search has no words to look for' };
  const words = clauses.reduce((count, clause) => count + clause.words.length, 0);
  if (words > MAX_QUERY_WORDS) return { error: `The search has ${words} words: at most ${MAX_QUERY_WORDS}` };
  const shortPrefix = clauses.find((clause) => clause.prefix && [...clause.words.at(-1)!].length < MIN_PREFIX);
  if (shortPrefix) return { error: `A prefix search needs at least ${MIN_PREFIX} characters before "*": "${shortPrefix.words.at(-1)}*" has fewer` };
  return { clauses };
}

/** The words of `text` as one clause, or null when it has none. */
function clauseOf(text: string, prefix: boolean): SearchClause | null {
  const words = text.match(WORD);
  return words ? { words, prefix } : null;
}

/** Why an unquoted token (`beforeQuote`: a quote follows it) reads as an operator of a search syntax, or null when it is text. */
function operatorIn(token: string, beforeQuote: boolean): string | null {
  const first = /^\p{Lu}+/u.exec(token)?.[0];
  if (first && OPERATORS.has(first) && !/^[\p{L}\p{N}]/u.test(token.slice(first.length))) {
    return `The search has no operators such as ${first}: every word must match. Put "${first}" in quotes to search for the word`;
  }
  if (/^-[\p{L}\p{N}]/u.test(token) || (token === '-' && beforeQuote)) return 'The search cannot exclude words ("-word"): leave the minus out';
  return null;
}
