import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { startTcpProxy } from './support/redis-server';
import type { TestApp, TestUser } from './support/app';
import { createTestApp, createTestDatabase, signUp } from './support/app';

const postgres = process.env.TEST_DATABASE_URL;

// A PostgreSQL server that hangs or goes away is a network fault SQLite cannot have: the PostgreSQL suite
// (TEST_DATABASE_URL, as .ci/run sets) runs these.
if (postgres) {
  describe('PostgreSQL that stalls or disappears', () => {
    let proxy: ReturnType<typeof startTcpProxy>;
    let database: Awaited<ReturnType<typeof createTestDatabase>>;
    let t: TestApp;
    let alice: TestUser;
    let chatId: number;

    beforeAll(async () => {
      database = await createTestDatabase('unused');
      const url = new URL(database.url);
      proxy = startTcpProxy({ hostname: url.hostname, port: Number(url.port || 5432) });
      url.hostname = '127.0.0.1';
      url.port = String(proxy.port);
      t = await createTestApp({ DATABASE_URL: url.toString(), DATABASE_TIMEOUT_MS: '500' });
      alice = await signUp(t);
      const created = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'faults', is_group: true } });
      chatId = ((await created.json()) as { id: number }).id;
    }, 30_000);

    afterAll(async () => {
      proxy.resume();
      await t.cleanup();
      await database.drop();
      proxy.stop();
    }, 30_000);

    const send = (content: string) => t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content } });
    const history = async () =>
      ((await (await t.request(`/api/chats/${chatId}/messages`, { token: alice.token })).json()) as { content: string }[]).map((m) => m.content);

    test('a stalled database answers 503 within DATABASE_TIMEOUT_MS instead of hanging, and serves again once it resumes', async () => {
      proxy.stall();
      const refused = await send('while stalled');
      expect(refused.status).toBe(503);
      expect(await refused.json()).toEqual({ detail: 'The database is not responding: try again shortly' });
      const graphql = await t.request('/graphql', {
        method: 'POST',
        token: alice.token,
        json: { query: 'mutation($chatId: ID!) { sendMessage(chatId: $chatId, content: "over GraphQL") { id } }', variables: { chatId } },
      });
      expect(((await graphql.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('SERVICE_UNAVAILABLE');
      proxy.resume();
      expect((await send('after the stall')).status).toBe(200);
      // The refused message was never acknowledged, and is not stored half-way either.
      expect(await history()).toEqual(['after the stall']);
    });

    test('a database that went away answers 503, and serves again once it is back', async () => {
      proxy.cut();
      const refused = await send('while away');
      expect(refused.status).toBe(503);
      proxy.restore();
      expect((await send('after the outage')).status).toBe(200);
      expect(await history()).toEqual(['after the stall', 'after the outage']);
    });
  });
}
