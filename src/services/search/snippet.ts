import type { SearchClause, SearchQuery } from './search-query';
import { WORD } from './search-query';

/** The longest snippet, in UTF-16 units, ellipses aside. */
export const SNIPPET_LENGTH = 160;
/** How much text a snippet keeps before the first match, at most. */
const LEAD = 40;

export const MARK_OPEN = '<mark>';
export const MARK_CLOSE = '</mark>';

/**
 * What a search result shows of a message: the text around the first match, HTML-escaped, each match
 * between `<mark>` and `</mark>`, and `…` where text was cut. Built here rather than by the engines,
 * so it is the same on SQLite and PostgreSQL and no content reaches the client unescaped.
 *
 * Words are matched as the index matches them (ignoring case and Latin diacritics); a match the
 * engine found but this cannot place (its tokenizer split a word differently) leaves the text unmarked.
 *
 * @example snippet('Fish & chips at five?', query) // 'Fish &amp; <mark>chips</mark> at five?' for "chips"
 */
export function snippet(content: string, query: SearchQuery): string {
  const words = [...content.matchAll(WORD)].map((match) => ({ start: match.index, end: match.index + match[0].length, folded: fold(match[0]) }));
  const matches: Range[] = [];
  for (const range of query.clauses.flatMap((clause) => occurrences(words, clause)).sort((a, b) => a.start - b.start || b.end - a.end)) {
    // Overlapping matches (a word inside a matched phrase) are marked once.
    if (range.start >= (matches.at(-1)?.end ?? 0)) matches.push(range);
  }
  const [from, to] = window(content, matches[0]?.start ?? 0, words);
  let html = from > 0 ? '…' : '';
  let at = from;
  for (const match of matches) {
    const start = Math.max(match.start, from);
    const end = Math.min(match.end, to);
    if (start >= end) continue;
    html += escape(content.slice(at, start)) + MARK_OPEN + escape(content.slice(start, end)) + MARK_CLOSE;
    at = end;
  }
  return html + escape(content.slice(at, to)) + (to < content.length ? '…' : '');
}

interface Range {
  start: number;
  end: number;
}

/** Where the clause's words stand in a row among `words`. */
function occurrences(words: (Range & { folded: string })[], { words: wanted, prefix }: SearchClause): Range[] {
  const folded = wanted.map(fold);
  const ranges: Range[] = [];
  for (let first = 0; first + folded.length <= words.length; first++) {
    const matches = folded.every((word, i) => {
      const candidate = words[first + i]!.folded;
      return prefix && i === folded.length - 1 ? candidate.startsWith(word) : candidate === word;
    });
    if (matches) ranges.push({ start: words[first]!.start, end: words[first + folded.length - 1]!.end });
  }
  return ranges;
}

/** The part of `content` to show: from a word start at most LEAD before `focus`, to a word end within SNIPPET_LENGTH. */
function window(content: string, focus: number, words: Range[]): [number, number] {
  if (content.length <= SNIPPET_LENGTH) return [0, content.length];
  const from = focus <= LEAD ? 0 : (words.find((word) => word.end > focus - LEAD)?.start ?? 0);
  const limit = from + SNIPPET_LENGTH;
  if (limit >= content.length) return [from, content.length];
  const lastWhole = words.findLast((word) => word.start >= from && word.end <= limit);
  // One word longer than the window (a run of CJK text) is cut, never between the halves of a surrogate pair.
  const to = lastWhole && lastWhole.end > focus ? lastWhole.end : /[\udc00-\udfff]/.test(content[limit]!) ? limit - 1 : limit;
  return [from, to];
}

/** A word as the indexes compare it: lower case, Latin letters without their diacritics. */
const fold = (word: string) =>
  word
    .normalize('NFD')
    .replace(/([A-Za-z])[\u0300-\u036f]+/g, '$1')
    .normalize('NFC')
    .toLowerCase();

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (text: string) => text.replace(/\s+/g, ' ').replace(/[&<>"']/g, (char) => ESCAPES[char]!);
