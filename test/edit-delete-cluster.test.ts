import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, signUp, type TestApp } from './support/app';
import type { Instance } from './support/cluster';
import { connectChat, ok, signUpOn, twoInstances } from './support/cluster';
import type { PrivateRedis } from './support/redis-server';
import { startPrivateRedis } from './support/redis-server';
import { cutOffPair } from './support/cut-off';
import { groupRoom } from './support/rooms';
import type { Frame } from './support/sockets';
import { socketKit, withDeadline } from './support/sockets';

/**
 * Edits and deletions between instances: made on one, pushed to sockets and subscriptions held by
 * another (two real processes on PostgreSQL + Redis); and when Redis fails: refused with a clear 503
 * on every transport while an instance cannot deliver them, and repaired for an instance that was
 * cut off while another went on changing messages (a Redis of the test's own).
 */

/** A fault test waits for heartbeats (about a second each) on top of its own work: more than bun's default 5 s on a busy machine. */
const FAULT_TEST_TIMEOUT_MS = 30_000;

const isUpdate = (messageId: number, content: string) => (frame: Frame) =>
  frame.type === 'message_updated' && frame.message_id === messageId && frame.content === content;
const isDeletion = (messageId: number) => (frame: Frame) => frame.type === 'message_deleted' && frame.message_id === messageId;

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('two instances on PostgreSQL + Redis', () => {
    let a: Instance;
    let b: Instance;
    const cluster = twoInstances('edit-delete');
    beforeAll(() => ({ a, b } = cluster));

    test('an edit made on A and a deletion made over /ws on A reach a socket and a messageChanged subscriber on B', async () => {
      const [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'across', is_group: true, participant_usernames: [bob.username] } }),
      );
      const message = await ok<{ id: number }>(a.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: alice.token, json: { content: 'draft' } }));
      const bobOnB = await connectChat(b, bob);
      // Resuming from the message: an edit made before B listened is replayed, so none can be missed.
      const subscription = b.kit
        .graphql(bob.token)
        .subscribe(
          'subscription ($chatId: ID!, $after: ID) { messageChanged(chatId: $chatId, after: $after) { ... on MessageUpdatedEvent { message { id content editedAt } } ... on MessageDeletedEvent { messageId } } }',
          { chatId: chat.id, after: message.id },
          { field: 'messageChanged' },
        );

      const edited = await ok<{ edited_at: string }>(
        a.request(`/api/chats/${chat.id}/messages/${message.id}`, { method: 'PATCH', token: alice.token, json: { content: 'final' } }),
      );
      const pushed = await bobOnB.next(isUpdate(message.id, 'final'));
      expect((pushed.message as { edited_at: string }).edited_at).toBe(edited.edited_at);
      expect(await subscription.next((event) => event.message?.content === 'final')).toEqual({
        message: { id: String(message.id), content: 'final', editedAt: edited.edited_at },
      });

      const aliceOnA = await connectChat(a, alice);
      aliceOnA.send({ type: 'delete', chat_id: chat.id, message_id: message.id });
      expect(await bobOnB.next(isDeletion(message.id))).toEqual({ type: 'message_deleted', chat_id: chat.id, message_id: message.id });
      expect(await subscription.next((event) => event.messageId !== undefined)).toEqual({ messageId: String(message.id) });
      expect(await ok(b.request(`/api/chats/${chat.id}/messages`, { token: bob.token }))).toEqual([]);
      expect(subscription.errors).toEqual([]);
    });
  });
}

describe('when Redis fails', () => {
  let redis: PrivateRedis;
  const cleanups: (() => unknown)[] = [];

  beforeAll(async () => {
    redis = await startPrivateRedis();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await redis.start();
  });
  afterAll(() => redis.stop());

  async function appOnRedis(): Promise<TestApp> {
    const t = await createTestApp({ REDIS_URL: redis.url, REDIS_PREFIX: `edit-delete-faults:${crypto.randomUUID()}:` });
    cleanups.push(() => t.cleanup());
    return t;
  }

  /** Resolves once `healthy()` says `wanted`: the heartbeat notices a change within about a second. */
  async function until(healthy: () => Promise<boolean>, wanted: boolean, what: string): Promise<void> {
    await withDeadline(
      (async () => {
        while ((await healthy()) !== wanted) await new Promise((resolve) => setTimeout(resolve, 50));
      })(),
      () => what,
    );
  }

  test(
    'while Redis is unreachable, edits and deletions are refused with 503 on every transport and nothing changes',
    async () => {
      const t = await appOnRedis();
      const ana = await signUp(t);
      const chatId = await groupRoom(t, ana, [], 'faults');
      const sent = await (await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: ana.token, json: { content: 'as it was' } })).json();
      const server = t.listen();
      cleanups.push(() => server.stop(true));
      const kit = socketKit(server, t.app.services);
      cleanups.push(() => kit.dispose());
      const socket = kit.chat(ana.token);
      await socket.opened;
      await socket.sync();

      await redis.stop();
      await until(async () => (await t.app.services.health()).healthy, false, 'the app never noticed Redis was gone');
      const path = `/api/chats/${chatId}/messages/${sent.id}`;
      for (const response of [
        await t.request(path, { method: 'PATCH', token: ana.token, json: { content: 'changed' } }),
        await t.request(path, { method: 'DELETE', token: ana.token }),
      ]) {
        expect(response.status).toBe(503);
        expect((await response.json()).detail).toContain('Redis is unreachable');
      }
      socket.send({ type: 'edit', chat_id: chatId, message_id: sent.id, content: 'changed' });
      expect((await socket.nextError()).error).toContain('Redis is unreachable');
      socket.send({ type: 'delete', chat_id: chatId, message_id: sent.id });
      expect((await socket.nextError()).error).toContain('Redis is unreachable');
      const graphql = await t.request('/graphql', {
        method: 'POST',
        token: ana.token,
        json: { query: 'mutation ($chatId: ID!, $id: ID!) { deleteMessage(chatId: $chatId, messageId: $id) }', variables: { chatId, id: sent.id } },
      });
      expect((await graphql.json()).errors[0].extensions.code).toBe('SERVICE_UNAVAILABLE');
      const history = await (await t.request(`/api/chats/${chatId}/messages`, { token: ana.token })).json();
      expect(history).toEqual([{ ...sent, edited_at: null }]);
      expect(socket.isClosed()).toBe(false);
    },
    FAULT_TEST_TIMEOUT_MS,
  );

  test(
    "edits and deletions made while one instance was cut off reach that instance's sockets once Redis is back",
    async () => {
      const { a, kit, cut, restore } = await cutOffPair(redis.url, cleanups);

      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const chatId = await groupRoom(a, ana, [ben], 'cut off');
      const post = async (content: string) =>
        ((await (await a.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: ana.token, json: { content } })).json()) as { id: number }).id;
      const [edited, deleted] = [await post('to be edited'), await post('to be deleted')];
      const member = kit.chat(ben.token);
      await member.opened;
      await member.sync();

      await cut();
      const change = (id: number, init: RequestInit & { json?: unknown }) => a.request(`/api/chats/${chatId}/messages/${id}`, { ...init, token: ana.token });
      expect((await change(edited, { method: 'PATCH', json: { content: 'edited while B was cut off' } })).status).toBe(200);
      expect((await change(deleted, { method: 'DELETE' })).status).toBe(200);
      restore();

      await member.next(isUpdate(edited, 'edited while B was cut off'));
      await member.next(isDeletion(deleted));
      const after = await post('after the repair');
      await member.next((frame) => frame.type === 'message' && frame.message_id === after);
    },
    FAULT_TEST_TIMEOUT_MS,
  );
});
