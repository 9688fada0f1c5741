import { afterAll, beforeAll, expect, test } from 'bun:test';
import { serverAudits } from 'graphql-http';
import { createTestApp, type TestApp } from './support/app';

/**
 * The GraphQL-over-HTTP spec's server audits (graphql-http), run in-process against the app.
 * Every MUST holds; SHOULD and MAY audits are recommendations: a `warn`/`notice` is logged, not failed.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.cleanup());

const audits = serverAudits({
  url: 'http://test/graphql',
  fetchFn: (input: RequestInfo | URL, init?: RequestInit) => t.app.fetch(new Request(input, init)),
});

test('the audit suite is not empty', () => {
  expect(audits.filter((audit) => audit.name.startsWith('MUST ')).length).toBeGreaterThan(10);
});

for (const audit of audits) {
  test(`${audit.id} ${audit.name}`, async () => {
    const result = await audit.fn();
    if (result.status === 'ok') return;
    const detail = `${result.id} ${result.name} -> ${result.status}: ${result.reason} (HTTP ${result.response.status})`;
    if (audit.name.startsWith('MUST ')) {
      expect(`${detail}\n${await result.response.text()}`).toBe('ok');
    }
    console.warn(`graphql-http audit ${detail}`);
    expect(result.status).not.toBe('error');
  });
}
