import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { PrivateRedis } from './support/redis-server';
import { startPrivateRedis } from './support/redis-server';
import { cutOffPair } from './support/cut-off';
import { startFakeGemini } from './support/fake-gemini';
import type { GraphqlSubscription, SocketKit } from './support/sockets';
import { socketKit, withDeadline } from './support/sockets';

/**
 * Redis blinks, stalls and disappears: a Redis of the test's own (never the machine's shared one),
 * stopped, frozen and cut off through a proxy. No instance may crash, report itself healthy while
 * it cannot deliver, half-accept a message, or lose one that it stored.
 */

/** Each test waits for heartbeats (about a second each), some for several outages: more than bun's default 5 s on a busy machine. */
setDefaultTimeout(30_000);

let redis: PrivateRedis;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  redis = await startPrivateRedis();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  redis.thaw();
  await redis.start();
});
afterAll(() => redis.stop());

async function appOnRedis(url = redis.url, prefix = `faults:${crypto.randomUUID()}:`): Promise<TestApp> {
  const t = await createTestApp({ REDIS_URL: url, REDIS_PREFIX: prefix });
  cleanups.push(() => t.cleanup());
  return t;
}

/** Polls `/health` (bounded) until it reports `status`: the heartbeat notices a change within about a second. */
async function healthBecomes(t: TestApp, status: 'healthy' | 'unhealthy'): Promise<Record<string, string>> {
  const polled = (async () => {
    for (;;) {
      const response = await t.request('/health');
      const body = (await response.json()) as Record<string, string>;
      if (body.status === status) {
        expect(response.status).toBe(status === 'healthy' ? 200 : 503);
        return body;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return withDeadline(polled, () => `/health never said ${status}`);
}

async function chatOf(t: TestApp, owner: TestUser, ...members: TestUser[]): Promise<number> {
  const chat = await (await t.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'faults', is_group: true } })).json();
  for (const member of members) await t.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: owner.token, json: { username: member.username } });
  return chat.id as number;
}

const storedCount = async (t: TestApp, chatId: number, token: string) =>
  ((await (await t.request(`/api/chats/${chatId}/messages?limit=200`, { token })).json()) as unknown[]).length;

describe('Redis disappears', () => {
  test('health says so, senders get a clear 503 on every transport and nothing is stored; all works again when Redis is back', async () => {
    const t = await appOnRedis();
    const ana = await signUp(t);
    const chatId = await chatOf(t, ana);
    const server = t.listen();
    cleanups.push(() => server.stop(true));
    const kit = socketKit(server, t.app.services);
    cleanups.push(() => kit.dispose());
    const socket = kit.chat(ana.token);
    await socket.opened;
    await socket.join(chatId);

    await redis.stop();
    expect((await healthBecomes(t, 'unhealthy')).pubsub).not.toBe('ready');
    const refused = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: ana.token, json: { content: 'while Redis is down' } });
    expect(refused.status).toBe(503);
    expect((await refused.json()).detail).toContain('Redis is unreachable');
    socket.send({ type: 'message', chat_id: chatId, content: 'over /ws while Redis is down' });
    expect((await socket.nextError()).error).toContain('Redis is unreachable');
    const graphql = await t.request('/graphql', {
      method: 'POST',
      token: ana.token,
      json: { query: 'mutation ($chatId: ID!) { sendMessage(chatId: $chatId, content: "over GraphQL") { id } }', variables: { chatId } },
    });
    expect((await graphql.json()).errors[0].extensions.code).toBe('SERVICE_UNAVAILABLE');
    expect(await storedCount(t, chatId, ana.token)).toBe(0);

    await redis.start();
    await healthBecomes(t, 'healthy');
    socket.send({ type: 'message', chat_id: chatId, content: 'Redis is back' });
    expect((await socket.next('message')).content).toBe('Redis is back');
    expect(socket.isClosed()).toBe(false);
  });

  test('an instance starts while Redis is down, reports 503, and joins when Redis comes up', async () => {
    await redis.stop();
    const t = await appOnRedis();
    expect(await healthBecomes(t, 'unhealthy')).toMatchObject({ database: 'ok' });
    const ana = await signUp(t);
    const chatId = await chatOf(t, ana);
    await redis.start();
    await healthBecomes(t, 'healthy');
    const sent = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: ana.token, json: { content: 'hello' } });
    expect(sent.status).toBe(200);
  });

  test('a stalled Redis is reported within the heartbeat and forgotten once it answers', async () => {
    const t = await appOnRedis();
    await healthBecomes(t, 'healthy');
    redis.freeze();
    await healthBecomes(t, 'unhealthy');
    redis.thaw();
    await healthBecomes(t, 'healthy');
  });
});

describe('a /bot ask caught by the outage', () => {
  test('an ask stored just before Redis went away (its room lock could not be taken) is answered once Redis is back', async () => {
    const fake = await startFakeGemini();
    cleanups.push(() => fake.stop());
    const t = await createTestApp({
      REDIS_URL: redis.url,
      REDIS_PREFIX: `faults:${crypto.randomUUID()}:`,
      GEMINI_API_KEY: fake.apiKey,
      GEMINI_BASE_URL: fake.url,
    });
    cleanups.push(() => t.cleanup());
    const ana = await signUp(t);
    const chatId = await chatOf(t, ana);
    await redis.stop();
    await healthBecomes(t, 'unhealthy');
    // Stored as the group-commit writer stores an ask; the lock is then out of reach.
    const ask = await t.app.services.db.message.create({
      data: { chatId, userId: ana.id, content: '/bot are you there?', askPending: true },
      select: { id: true },
    });
    await t.app.services.bot.answer(chatId);
    expect(fake.requests).toHaveLength(0);

    fake.reply({ kind: 'text', chunks: ['Here ', 'now.'] });
    const request = fake.nextRequest();
    await redis.start();
    await request;
    await t.app.services.bot.idle();
    const answers = await t.app.services.db.message.findMany({ where: { chatId, replyToId: ask.id }, select: { content: true, status: true } });
    expect(answers).toEqual([{ content: 'Here now.', status: 'complete' }]);
  });
});

/** A graphql-ws `messageAdded` subscription of `token`'s user on `kit`'s instance, listening once it resolves. */
async function messagesOf(kit: SocketKit, token: string, chatId: number): Promise<GraphqlSubscription<{ id: string }>> {
  const subscription = kit
    .graphql(token)
    .subscribe<{ id: string }>(
      'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id } }',
      { chatId },
      { field: 'messageAdded', ready: ['chat:message', chatId] },
    );
  await subscription.ready;
  return subscription;
}

/** Posts `content` on `t` as `user` and answers the stored message's id. */
const post = async (t: TestApp, user: TestUser, chatId: number, content: string) =>
  ((await (await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } })).json()) as { id: number }).id;

describe('one instance loses Redis while another keeps it', () => {
  test("messages stored meanwhile reach the cut-off instance's members once Redis is back, each once", async () => {
    const { a, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
    const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
    const chatId = await chatOf(a, ana, ben);
    const member = kit.chat(ben.token);
    await member.opened;
    await member.join(chatId);
    const before = await post(a, ana, chatId, 'before the cut');
    await member.next((frame) => frame.type === 'message' && frame.message_id === before);

    await cut();
    const missed = [await post(a, ana, chatId, 'missed 1'), await post(a, ana, chatId, 'missed 2')];
    restore();
    for (const id of missed) await member.next((frame) => frame.type === 'message' && frame.message_id === id);
    const after = await post(a, ana, chatId, 'after the repair');
    await member.next((frame) => frame.type === 'message' && frame.message_id === after);
    const ids = member.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id);
    expect(ids).toEqual([before, ...missed, after]);
  });

  test("removals, deletions and new chats made meanwhile reach the cut-off instance's sockets from the database, and the replay sends nothing of a chat left", async () => {
    const { a, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
    const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
    const [removedFrom, deleted, stayed] = [await chatOf(a, ana, ben), await chatOf(a, ana, ben), await chatOf(a, ana, ben)];
    const member = kit.chat(ben.token);
    await member.opened;
    await member.sync();
    const seen = await post(a, ana, removedFrom, 'before the cut');
    await member.next((frame) => frame.type === 'message' && frame.message_id === seen);

    await cut();
    await a.request(`/api/chats/${removedFrom}/participants/${ben.id}`, { method: 'DELETE', token: ana.token });
    await a.request(`/api/chats/${deleted}`, { method: 'DELETE', token: ana.token });
    const added = (await (
      await a.request('/api/chats', { method: 'POST', token: ana.token, json: { name: 'made meanwhile', participant_usernames: [ben.username] } })
    ).json()) as {
      id: number;
    };
    const secret = await post(a, ana, removedFrom, 'after Ben left');
    // Replayed after everything stored before it: once it is here, the replay is done.
    const replayed = await post(a, ana, stayed, 'in a chat Ben is still in');
    restore();

    expect(await member.next((frame) => frame.type === 'removed_from_chat')).toEqual({
      type: 'removed_from_chat',
      chat_id: removedFrom,
      notification: 'You are no longer in faults',
    });
    expect(await member.next((frame) => frame.type === 'chat_deleted')).toEqual({ type: 'chat_deleted', chat_id: deleted, notification: 'Chat was deleted' });
    const addedFrame = await member.next((frame) => frame.type === 'chat_created');
    expect(addedFrame).toMatchObject({ chat: { id: added.id, name: 'made meanwhile', owner_id: ana.id }, notification: "You've been added to made meanwhile" });
    await member.next((frame) => frame.type === 'message' && frame.message_id === replayed);
    const live = await post(a, ana, added.id, 'in the chat made meanwhile');
    await member.next((frame) => frame.type === 'message' && frame.message_id === live);
    const ids = member.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id);
    expect(ids).not.toContain(secret);
    expect(member.frames.filter((frame) => ['removed_from_chat', 'chat_deleted', 'chat_created'].includes(frame.type))).toHaveLength(3);
  });

  test("a subscription of a user removed meanwhile ends once Redis is back, and the cut-off instance's cache does not answer for them", async () => {
    const { a, kit, requestB, cut, restore } = await cutOffPair(redis.url, cleanups);
    const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
    const chatId = await chatOf(a, ana, ben);
    // B caches Ben's membership.
    expect((await requestB(`/api/chats/${chatId}/messages`, ben.token)).status).toBe(200);
    const subscription = await messagesOf(kit, ben.token, chatId);

    await cut();
    await a.request(`/api/chats/${chatId}/participants/${ben.id}`, { method: 'DELETE', token: ana.token });
    // Meanwhile B cannot hear the removal, so it does not trust what it cached.
    expect((await requestB(`/api/chats/${chatId}/messages`, ben.token)).status).toBe(403);
    await post(a, ana, chatId, 'after Ben left');
    restore();

    expect(await withDeadline(subscription.done, () => 'the subscription of a removed user did not end')).toEqual({ kind: 'complete' });
    expect(subscription.events).toEqual([]);
    expect((await requestB(`/api/chats/${chatId}/messages`, ben.token)).status).toBe(403);
  });
  test('a viewerEvents subscriber on the cut-off instance is told from when events may have been missed, then hears live ones again', async () => {
    const { a, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
    const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
    const subscription = kit
      .graphql(ben.token)
      .subscribe<{ __typename: string; since?: string; chat?: { id: string } }>(
        'subscription { viewerEvents { __typename ... on EventsMissedEvent { since } ... on ChatInviteEvent { chat { id } } } }',
        {},
        { field: 'viewerEvents', ready: ['user:event', ben.id] },
      );
    await subscription.ready;

    await cut();
    const lostFrom = Date.now();
    const missed = await chatOf(a, ana, ben);
    restore();

    const told = await subscription.next((event) => event.__typename === 'EventsMissedEvent');
    expect(Date.parse(told.since!)).toBeLessThanOrEqual(lostFrom);
    expect(Date.now() - Date.parse(told.since!)).toBeLessThan(60_000);
    const heard = await chatOf(a, ana, ben);
    await subscription.next((event) => event.__typename === 'ChatInviteEvent' && event.chat?.id === String(heard));
    expect(subscription.events.map((event) => event.__typename)).toEqual(['EventsMissedEvent', 'ChatInviteEvent']);
    expect(subscription.events.some((event) => event.chat?.id === String(missed))).toBe(false);
  });
  describe('while the cut-off instance catches up', () => {
    /** Makes B's reads of users' chats wait for `open` once `armed`, and tells when the first one is made. */
    function gateChatReads(b: { services: { chats: { chatIdsOf: (userId: number) => Promise<number[]> } } }, { readFirst = false } = {}) {
      const chats = b.services.chats;
      const chatIdsOf = chats.chatIdsOf.bind(chats);
      const gate = Promise.withResolvers<void>();
      const reading = Promise.withResolvers<void>();
      let armed = false;
      chats.chatIdsOf = async (userId) => {
        if (!armed) return chatIdsOf(userId);
        reading.resolve();
        // `readFirst`: the database is read now and the answer comes late, as from a slow connection.
        const read = readFirst ? await chatIdsOf(userId) : null;
        await gate.promise;
        return read ?? chatIdsOf(userId);
      };
      return { arm: () => (armed = true), open: () => gate.resolve(), reading: reading.promise };
    }

    test('events arriving from Redis wait for memberships to be checked: a removed user gets nothing live of the chat', async () => {
      const { a, b, kit, cut, restore, passedToB, requestB } = await cutOffPair(redis.url, cleanups);
      const [ana, ben, cat] = await Promise.all([signUp(a), signUp(a), signUp(a)]);
      const [gone, stayed] = [await chatOf(a, ana, ben, cat), await chatOf(a, ana, ben)];
      const [removed, member] = [kit.chat(ben.token), kit.chat(cat.token)];
      await Promise.all([removed.opened, member.opened]);
      await Promise.all([removed.sync(), member.sync()]);
      const reads = gateChatReads(b);

      await cut();
      await a.request(`/api/chats/${gone}/participants/${ben.id}`, { method: 'DELETE', token: ana.token });
      reads.arm();
      restore();
      await reads.reading;
      // Published after B subscribed again, while B reads memberships: without the hold, live at once.
      // Watched before it is posted: A publishes it before its answer comes back.
      const passed = passedToB('live while B checks memberships');
      const live = await post(a, ana, gone, 'live while B checks memberships');
      await passed;
      await requestB('/health', ben.token);
      reads.open();

      await member.next((frame) => frame.type === 'message' && frame.message_id === live);
      await removed.next((frame) => frame.type === 'removed_from_chat' && frame.chat_id === gone);
      const marker = await post(a, ana, stayed, 'after the check');
      await removed.next((frame) => frame.type === 'message' && frame.message_id === marker);
      expect(removed.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id)).not.toContain(live);
    });

    test("a socket's join in flight when Redis returns is waited for, and the socket still loses the chat its user was removed from", async () => {
      const { a, b, kit, cut, restore, reconnected } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const [gone, joining] = [await chatOf(a, ana, ben), await chatOf(a, ana, ben)];
      const socket = kit.chat(ben.token);
      await socket.opened;
      await socket.sync();
      // The join's membership check waits until the test lets it go.
      const chats = b.services.chats;
      const requireParticipantSince = chats.requireParticipantSince.bind(chats);
      const joinGate = Promise.withResolvers<void>();
      chats.requireParticipantSince = async (userId, chatId) => {
        if (chatId === joining) await joinGate.promise;
        return requireParticipantSince(userId, chatId);
      };

      await cut();
      await a.request(`/api/chats/${gone}/participants/${ben.id}`, { method: 'DELETE', token: ana.token });
      socket.send({ type: 'join', chat_id: joining });
      restore();
      await reconnected();
      joinGate.resolve();

      expect(await socket.next((frame) => frame.type === 'removed_from_chat')).toMatchObject({ chat_id: gone });
      const secret = await post(a, ana, gone, 'after Ben left');
      const joined = await post(a, ana, joining, 'in the chat joined');
      await socket.next((frame) => frame.type === 'message' && frame.message_id === joined);
      expect(socket.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id)).not.toContain(secret);
    });

    test("one outage's repair at a time: a slow read of the first never undoes the second's", async () => {
      const { a, b, kit, cut, restore, reconnected } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const chatId = await chatOf(a, ana, ben);
      const socket = kit.chat(ben.token);
      await socket.opened;
      await socket.sync();
      const reads = gateChatReads(b, { readFirst: true });

      await cut();
      await a.request(`/api/chats/${chatId}/participants/${ben.id}`, { method: 'DELETE', token: ana.token });
      reads.arm();
      restore();
      // The first repair has read "not in the chat"; its answer comes after the second outage.
      await reads.reading;
      await cut();
      await a.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: ana.token, json: { username: ben.username } });
      restore();
      await reconnected();
      reads.open();

      await socket.next((frame) => frame.type === 'removed_from_chat' && frame.chat_id === chatId);
      await socket.next((frame) => frame.type === 'chat_created' && (frame.chat as { id: number }).id === chatId);
      const after = await post(a, ana, chatId, 'Ben is back in');
      await socket.next((frame) => frame.type === 'message' && frame.message_id === after);
    });
    test('when the cut-off instance cannot read memberships, its sockets are closed with 1013 and its chat subscriptions end: nothing goes on unchecked', async () => {
      const { a, b, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const chatId = await chatOf(a, ana, ben);
      const socket = kit.chat(ben.token);
      await socket.opened;
      await socket.sync();
      const subscription = await messagesOf(kit, ben.token, chatId);

      await cut();
      b.services.chats.chatIdsOf = () => Promise.reject(new Error('the database is away'));
      restore();

      expect(await socket.closed).toEqual({ code: 1013, reason: 'Try again later' });
      expect(await withDeadline(subscription.done, () => 'the unchecked subscription did not end')).toEqual({ kind: 'complete' });
    });
    test('a subscription started while Redis is unreachable stands, and gets what was stored meanwhile once it is back', async () => {
      const { a, b, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const chatId = await chatOf(a, ana, ben);

      await cut();
      // The room has no listener on B yet: its channels open while Redis cannot confirm them.
      const listeners = b.services.pubsub.listenerCount();
      const subscription = kit
        .graphql(ben.token)
        .subscribe<{ id: string }>('subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id } }', { chatId }, { field: 'messageAdded' });
      await withDeadline(
        (async () => {
          while (b.services.pubsub.listenerCount() === listeners) await new Promise((resolve) => setTimeout(resolve, 20));
        })(),
        () => 'the subscription never registered on B',
      );
      const meanwhile = await post(a, ana, chatId, 'meanwhile');
      restore();

      expect(await subscription.next((event) => event.id === String(meanwhile))).toEqual({ id: String(meanwhile) });
    });
    test('a chat taken in by a repair while Redis is lost again stands, and its messages come once Redis is back', async () => {
      const { a, b, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const chatId = await chatOf(a, ana);
      const socket = kit.chat(ben.token);
      await socket.opened;
      await socket.sync();
      const chats = b.services.chats;
      const summariesOf = chats.summariesOf.bind(chats);
      const gate = Promise.withResolvers<void>();
      const reading = Promise.withResolvers<void>();
      chats.summariesOf = async (chatIds) => {
        reading.resolve();
        await gate.promise;
        return summariesOf(chatIds);
      };

      await cut();
      await a.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: ana.token, json: { username: ben.username } });
      restore();
      await reading.promise;
      // The repair opens the chat's room on B while Redis is gone again: its channels cannot be confirmed.
      await cut();
      gate.resolve();
      await socket.next((frame) => frame.type === 'chat_created' && (frame.chat as { id: number }).id === chatId);
      const meanwhile = await post(a, ana, chatId, 'while Redis was lost again');
      restore();
      await socket.next((frame) => frame.type === 'message' && frame.message_id === meanwhile);
    });
    test("a membership event that arrives past the bus's hold keeps what it did, and the user's other chats are still made good", async () => {
      const { a, b, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const gone = await chatOf(a, ana, ben);
      const socket = kit.chat(ben.token);
      await socket.opened;
      await socket.sync();
      const reads = gateChatReads(b);

      await cut();
      await a.request(`/api/chats/${gone}/participants/${ben.id}`, { method: 'DELETE', token: ana.token });
      const invited = await chatOf(a, ana, ben);
      reads.arm();
      restore();
      await reads.reading;
      // As if the hold had run out (RESUME_HOLD_MS): the invitation reaches B's listeners while the check reads.
      const summary = (await a.app.services.chats.summariesOf([invited])).get(invited)!;
      (b.services.pubsub as unknown as { deliver: (topic: string, id: number, event: unknown) => void }).deliver('user:event', ben.id, {
        type: 'chat_invite',
        chat: summary,
        invitedBy: ana.username,
      });
      reads.open();

      await socket.next((frame) => frame.type === 'removed_from_chat' && frame.chat_id === gone);
      const secret = await post(a, ana, gone, 'after Ben left');
      const heard = await post(a, ana, invited, 'in the chat Ben was invited to');
      await socket.next((frame) => frame.type === 'message' && frame.message_id === heard);
      expect(socket.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id)).not.toContain(secret);
      // Told once of the invitation: by the event, not again by the check.
      expect(socket.frames.filter((frame) => ['chat_invite', 'chat_created'].includes(frame.type))).toHaveLength(1);
    });

    test("the caches are dropped the moment Redis is back, even while an earlier outage's repair still runs", async () => {
      const { a, b, cut, restore, requestB, reconnected } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const chatId = await chatOf(a, ana, ben);
      // The first repair's replay is slow (a long outage's messages to read back): the second waits for it.
      const feeds = b.services.feeds;
      const replay = feeds.repair.bind(feeds);
      const slow = Promise.withResolvers<void>();
      let first = true;
      feeds.repair = async (since) => {
        if (first) {
          first = false;
          await slow.promise;
        }
        return replay(since);
      };

      await cut();
      restore();
      await reconnected();
      // B caches Ben's membership after the first outage's caches were dropped.
      expect((await requestB(`/api/chats/${chatId}/messages`, ben.token)).status).toBe(200);
      await cut();
      await a.request(`/api/chats/${chatId}/participants/${ben.id}`, { method: 'DELETE', token: ana.token });
      restore();
      await reconnected();

      expect((await requestB(`/api/chats/${chatId}/messages`, ben.token)).status).toBe(403);
      slow.resolve();
    });
    test('outages in which nothing changed send no membership frame and end no subscription', async () => {
      const { a, kit, cut, restore, reconnected } = await cutOffPair(redis.url, cleanups);
      const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
      const [chatId, owned] = [await chatOf(a, ana, ben), await chatOf(a, ben, ana)];
      const [member, owner] = [kit.chat(ben.token), kit.chat(ana.token)];
      await Promise.all([member.opened, owner.opened]);
      await Promise.all([member.sync(), owner.sync()]);
      const subscription = await messagesOf(kit, ben.token, chatId);

      for (let outage = 0; outage < 3; outage++) {
        await cut();
        restore();
        await reconnected();
      }
      // Delivered after every repair's check: what a repair would have sent came before them.
      const [inChat, inOwned] = [await post(a, ana, chatId, 'after the outages'), await post(a, ana, owned, 'in the other chat')];
      await member.next((frame) => frame.type === 'message' && frame.message_id === inOwned);
      await owner.next((frame) => frame.type === 'message' && frame.message_id === inOwned);
      await subscription.next((event) => event.id === String(inChat));
      const membershipFrames = (frames: { type: string }[]) =>
        frames.filter((frame) => ['removed_from_chat', 'chat_deleted', 'chat_created'].includes(frame.type));
      expect(membershipFrames(member.frames)).toEqual([]);
      expect(membershipFrames(owner.frames)).toEqual([]);
      expect(subscription.results.length).toBe(1);
      expect(subscription.errors).toEqual([]);
    });

    test('a socket that closes while the check reads is let go, and the other sockets are still made good', async () => {
      const { a, b, kit, cut, restore } = await cutOffPair(redis.url, cleanups);
      const [ana, ben, cy] = await Promise.all([signUp(a), signUp(a), signUp(a)]);
      const [gone, stayed] = [await chatOf(a, ana, ben, cy), await chatOf(a, ana, ben, cy)];
      const [closing, staying] = [kit.chat(ben.token), kit.chat(cy.token)];
      await Promise.all([closing.opened, staying.opened]);
      await Promise.all([closing.sync(), staying.sync()]);
      const reads = gateChatReads(b, { readFirst: true });

      await cut();
      for (const user of [ben, cy]) await a.request(`/api/chats/${gone}/participants/${user.id}`, { method: 'DELETE', token: ana.token });
      reads.arm();
      restore();
      await reads.reading;
      await closing.close();
      reads.open();

      expect(await staying.next((frame) => frame.type === 'removed_from_chat')).toMatchObject({ chat_id: gone });
      const [secret, heard] = [await post(a, ana, gone, 'after they left'), await post(a, ana, stayed, 'still in')];
      await staying.next((frame) => frame.type === 'message' && frame.message_id === heard);
      expect(staying.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id)).not.toContain(secret);
      // Nothing was sent to the closed socket, and the check went on for the others (a failure would have closed them with 1013).
      expect(closing.frames.filter((frame) => frame.type === 'removed_from_chat')).toEqual([]);
    });
  });
});
