import { describe, expect, test } from 'bun:test';
import type { SearchQuery } from './search-query';
import { parseSearchQuery } from './search-query';
import { SNIPPET_LENGTH, snippet } from './snippet';

const query = (text: string) => parseSearchQuery(text) as SearchQuery;
const show = (content: string, text: string) => snippet(content, query(text));

describe('snippets', () => {
  test('mark each match and HTML-escape everything else', () => {
    expect(show('Lunch at the <b>fish</b> & "chips" place?', 'fish chips')).toBe(
      'Lunch at the &lt;b&gt;<mark>fish</mark>&lt;/b&gt; &amp; &quot;<mark>chips</mark>&quot; place?',
    );
    expect(show("it's <script>alert(1)</script>", 'alert')).toBe('it&#39;s &lt;script&gt;<mark>alert</mark>(1)&lt;/script&gt;');
  });

  test('match as the index does: any case, Latin accents folded, prefixes, every occurrence', () => {
    expect(show('Café CAFE cafés', 'cafe')).toBe('<mark>Café</mark> <mark>CAFE</mark> cafés');
    expect(show('Crème brûlée', 'creme BRULEE')).toBe('<mark>Crème</mark> <mark>brûlée</mark>');
    expect(show('Deploying the deployment', 'deploy*')).toBe('<mark>Deploying</mark> the <mark>deployment</mark>');
    expect(show('ПРИВЕТ мир', 'привет')).toBe('<mark>ПРИВЕТ</mark> мир');
  });

  test('a phrase is marked whole, and only where its words follow each other', () => {
    expect(show('new york, then york new, then New-York', '"new york"')).toBe('<mark>new york</mark>, then york new, then <mark>New-York</mark>');
    expect(show('the release notes', '"release no"*')).toBe('the <mark>release notes</mark>');
  });

  test('long text is cut around the first match, at word boundaries, with ellipses', () => {
    const before = Array.from({ length: 30 }, (_, i) => `before${i}`).join(' ');
    const after = Array.from({ length: 30 }, (_, i) => `after${i}`).join(' ');
    const result = show(`${before} needle ${after}`, 'needle');
    expect(result.startsWith('…')).toBe(true);
    expect(result.endsWith('…')).toBe(true);
    expect(result).toContain('<mark>needle</mark>');
    expect(result.replace(/<\/?mark>|…/g, '').length).toBeLessThanOrEqual(SNIPPET_LENGTH);
    expect(result).toMatch(/^…before\d+ /);
    expect(result).toMatch(/ after\d+…$/);
    // A match near the start keeps the start.
    expect(show(`needle ${after}`, 'needle')).toMatch(/^<mark>needle<\/mark> after0 /);
  });

  test('one word longer than a snippet (a run of CJK text) is cut, never inside a surrogate pair', () => {
    const run = `東京${'𠀋'.repeat(200)}`;
    const result = show(run, '東京*');
    expect(result.startsWith('<mark>東京')).toBe(true);
    expect(result.endsWith('</mark>…')).toBe(true);
    expect(result.isWellFormed()).toBe(true);
  });

  test('a match this cannot place (another tokenizer split it) leaves the text unmarked', () => {
    expect(show('nothing to see', 'elsewhere')).toBe('nothing to see');
  });
});
