import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { App } from '../src/app';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { PrivateRedis } from './support/redis-server';
import { startPrivateRedis } from './support/redis-server';
import { withDeadline } from './support/sockets';

/**
 * Two instances on one database and one Redis. Each caches who is in which chat; a removal, a
 * leave or a deletion made on one must hold on the other as soon as the invalidation arrives, not
 * when its cached answer expires a minute later.
 */

let privateRedis: PrivateRedis | null = null;
let a: TestApp;
let b: App;

beforeAll(async () => {
  // The suite's Redis when it has one (PostgreSQL + Redis runs), else one of this file's own.
  const redisUrl = process.env.TEST_REDIS_URL ?? (privateRedis = await startPrivateRedis()).url;
  a = await createTestApp({ REDIS_URL: redisUrl, REDIS_PREFIX: `memberships:${crypto.randomUUID()}:` });
  b = await createApp(
    loadConfig({
      DATABASE_URL: a.config.database.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: a.config.redisPrefix,
      SECRET_KEY: a.config.secretKey,
      MESSAGE_RATE_LIMIT: '0',
      LOG_LEVEL: 'silent',
    }),
  );
});
afterAll(async () => {
  await b.close();
  await a.cleanup();
  await privateRedis?.stop();
});

/** A request to instance B, in-process. */
async function onB(path: string, user: TestUser, init: { method?: string; json?: unknown } = {}): Promise<Response> {
  const headers = { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' };
  const response = await b.fetch(
    new Request(`http://test${path}`, { method: init.method ?? 'GET', headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) }),
  );
  return response!;
}

const sendOnB = (user: TestUser, chatId: number, content: string) => onB(`/api/chats/${chatId}/messages`, user, { method: 'POST', json: { content } });

/** A group chat made on A, and B's cached "yes" for each member (each sends a message through B). */
async function chatCachedOnB(owner: TestUser, members: TestUser[]): Promise<number> {
  const response = await a.request('/api/chats', {
    method: 'POST',
    token: owner.token,
    json: { name: 'cluster', is_group: true, participant_usernames: members.map((member) => member.username) },
  });
  const chatId = ((await response.json()) as { id: number }).id;
  for (const user of [owner, ...members]) expect((await sendOnB(user, chatId, `hello from ${user.username}`)).status).toBe(200);
  return chatId;
}

/** Resolves once B has received the invalidation of `scope` (B's own cache listener ran before this one). */
function invalidationReachesB(scope: { userId?: number; chatId?: number }): Promise<void> {
  const arrived = new Promise<void>((resolve) => {
    const listening = b.services.pubsub.on('membership:forget', 0, (received) => {
      if (received.userId !== scope.userId || received.chatId !== scope.chatId) return;
      listening.stop();
      resolve();
    });
  });
  return withDeadline(arrived, () => `instance B never heard that ${JSON.stringify(scope)} was forgotten`);
}

test("B answers memberships from its cache: a row deleted behind the services' back still reads as a member", async () => {
  const [owner, carol] = await Promise.all([signUp(a), signUp(a)]);
  const chatId = await chatCachedOnB(owner, [carol]);
  await a.app.services.db.chatParticipant.deleteMany({ where: { chatId, userId: carol.id } });
  // What the invalidation exists for: without it, B would go on accepting her for up to a minute.
  expect((await sendOnB(carol, chatId, 'still cached')).status).toBe(200);
});

test('a removal made on A holds on B as soon as the invalidation arrives', async () => {
  const [owner, bob] = await Promise.all([signUp(a), signUp(a)]);
  const chatId = await chatCachedOnB(owner, [bob]);
  const arrived = invalidationReachesB({ userId: bob.id, chatId });
  expect((await a.request(`/api/chats/${chatId}/participants/${bob.id}`, { method: 'DELETE', token: owner.token })).status).toBe(200);
  await arrived;
  expect(await (await sendOnB(bob, chatId, 'removed on A')).json()).toEqual({ detail: 'Not authorized' });
  expect((await sendOnB(owner, chatId, 'the owner stays')).status).toBe(200);
});

test('leaving on A holds on B as soon as the invalidation arrives', async () => {
  const [owner, bob] = await Promise.all([signUp(a), signUp(a)]);
  const chatId = await chatCachedOnB(owner, [bob]);
  const arrived = invalidationReachesB({ userId: bob.id, chatId });
  expect((await a.request(`/api/chats/${chatId}/leave`, { method: 'POST', token: bob.token })).status).toBe(200);
  await arrived;
  const refused = await sendOnB(bob, chatId, 'left on A');
  expect(refused.status).toBe(403);
});

test('a chat deleted on A is gone on B for everyone as soon as the invalidation arrives', async () => {
  const [owner, bob] = await Promise.all([signUp(a), signUp(a)]);
  const chatId = await chatCachedOnB(owner, [bob]);
  const arrived = invalidationReachesB({ chatId });
  expect((await a.request(`/api/chats/${chatId}`, { method: 'DELETE', token: owner.token })).status).toBe(200);
  await arrived;
  for (const user of [owner, bob]) {
    expect(await (await sendOnB(user, chatId, 'deleted on A')).json()).toEqual({ detail: 'Chat not found' });
    expect(await (await onB(`/api/chats/${chatId}`, user)).json()).toEqual({ detail: 'Chat not found' });
  }
});
