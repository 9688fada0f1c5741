import { beforeAll, describe, expect, test } from 'bun:test';
import { CATCH_UP_LIMIT } from '../src/services/message.service';
import { SlowSubscriberError } from '../src/services/pubsub';
import { signUp, type TestUser } from './support/app';
import { groupRoom, storeMessages } from './support/rooms';
import { servedTestApp, withDeadline } from './support/sockets';

/**
 * What hostile or unlucky clients do to subscriptions: leave before their replay is read,
 * complete before the first event, ask for more history than a replay holds. Nothing may leak a
 * listener (whose queue would overflow inside the publisher and take the process down), hold a
 * replay for a reader that left, or skip a message silently.
 */

const served = servedTestApp();
let alice: TestUser;
let bob: TestUser;
beforeAll(async () => {
  [alice, bob] = await Promise.all([signUp(served.t), signUp(served.t)]);
});

const room = (name: string) => groupRoom(served.t, alice, [bob], name);
/** Stores `count` messages from alice at once (one group commit) and returns their ids in order. */
const fill = (chatId: number, count: number, content?: (i: number) => string) => storeMessages(served.t, alice, chatId, count, content);

/** The server handles a client's close on its own schedule: wait (bounded) until its listeners are gone. */
async function listenersBackTo(expected: number): Promise<void> {
  const released = (async () => {
    while (served.t.app.services.pubsub.listenerCount() !== expected) await new Promise((resolve) => setImmediate(resolve));
  })();
  await withDeadline(released, () => `listeners still held: ${served.t.app.services.pubsub.listenerCount()}, expected ${expected}`);
}

describe('subscriptions cannot leak', () => {
  test('/ws clients that leave before their replay is read, and graphql-ws clients that complete before the first event, hold nothing; the room keeps working past a queue overflow', async () => {
    const chatId = await room('hostile');
    const [first] = await fill(chatId, 3);
    const baseline = served.t.app.services.pubsub.listenerCount();
    for (let i = 0; i < 3; i++) {
      const hostile = served.kit.chat(bob.token);
      await hostile.opened;
      hostile.send({ type: 'join', chat_id: chatId, after: first });
      await hostile.close();
    }
    for (let i = 0; i < 3; i++) {
      const client = served.kit.graphql(bob.token);
      const subscription = client.subscribe(
        'subscription ($chatId: ID!) { messageAdded(chatId: $chatId, after: "0") { id } }',
        { chatId },
        { field: 'messageAdded' },
      );
      subscription.unsubscribe();
    }
    await served.kit.closeAll();
    await listenersBackTo(baseline);

    const witness = served.kit.chat(alice.token);
    await witness.opened;
    await witness.join(chatId);
    // Past graphql-yoga's per-subscriber buffer (1,024): a leaked reader would overflow inside publish.
    const ids = await fill(chatId, 1100);
    await witness.next((frame) => frame.type === 'message' && frame.message_id === ids.at(-1));
    expect(witness.frames.filter((frame) => frame.type === 'message')).toHaveLength(1100);
  });

  test('a replay of a large room is released when its reader drops at once', async () => {
    const chatId = await room('large');
    await fill(chatId, 1000, (i) => `${i} `.padEnd(10_000, 'x'));
    const baseline = served.t.app.services.pubsub.listenerCount();
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const reader = served.kit.chat(bob.token);
        await reader.opened;
        reader.send({ type: 'join', chat_id: chatId, after: 0 });
        // Dropped, not closed politely: a close handshake would queue behind the replay's 10 MB.
        (reader.ws as WebSocket & { terminate: () => void }).terminate();
        await reader.closed;
      }),
    );
    await listenersBackTo(baseline);
  });
});

test('a graphql-ws subscription whose source fails ends with an error result; the socket and the process carry on', async () => {
  const chatId = await room('failing source');
  const { messages } = served.t.app.services;
  const original = messages.subscribe;
  // What a reader ended as too slow, or a replay whose query failed, looks like to graphql-ws.
  messages.subscribe = async () =>
    ({
      [Symbol.asyncIterator]() {
        return this;
      },
      next: () => Promise.reject(new SlowSubscriberError()),
      return: () => Promise.resolve({ done: true, value: undefined }),
    }) as AsyncIterableIterator<never>;
  try {
    const client = served.kit.graphql(bob.token);
    const failing = client.subscribe('subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id } }', { chatId }, { field: 'messageAdded' });
    expect(await failing.done).toEqual({ kind: 'complete' });
    expect(failing.errors.map((error) => error.extensions?.code)).toEqual(['SLOW_SUBSCRIBER']);
    messages.subscribe = original;
    const working = client.subscribe<{ id: string }>(
      'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id } }',
      { chatId },
      { field: 'messageAdded', ready: ['chat:message', chatId] },
    );
    await working.ready;
    const [id] = await fill(chatId, 1);
    await working.next((event) => Number(event.id) === id);
  } finally {
    messages.subscribe = original;
  }
});

describe('slow graphql-ws subscribers (in one process, where one synchronous burst outruns any reader)', () => {
  const local = servedTestApp({ REDIS_URL: '' });

  /** A room of two, a subscriber (`args`: its root field's arguments), and a `/ws` witness; `burst(n)` publishes n events in one turn. */
  async function burstRoom(args: Record<string, unknown>) {
    const [owner, member] = await Promise.all([signUp(local.t), signUp(local.t)]);
    const chat = await (await local.t.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'burst', is_group: true } })).json();
    await local.t.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: owner.token, json: { username: member.username } });
    const sent = await (await local.t.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: owner.token, json: { content: 'template' } })).json();
    const subscriber = local.kit
      .graphql(member.token)
      .subscribe<{ id: string }>(
        'subscription ($chatId: ID!, $after: ID) { messageAdded(chatId: $chatId, after: $after) { id } }',
        { chatId: chat.id, ...args },
        { field: 'messageAdded', ready: ['chat:message', chat.id] },
      );
    await subscriber.ready;
    const witness = local.kit.chat(owner.token);
    await witness.opened;
    await witness.join(chat.id);
    const event = {
      ...sent,
      chatId: chat.id,
      userId: owner.id,
      user: { username: owner.username },
      isBot: false,
      status: 'complete',
      replyToId: null,
      askPending: false,
      createdAt: new Date(),
    };
    const burst = (count: number) => {
      for (let i = 1; i <= count; i++) local.t.app.services.pubsub.publish('chat:message', chat.id, { ...event, id: sent.id + i });
      return sent.id + count;
    };
    return { subscriber, witness, burst, firstId: sent.id + 1 };
  }

  test('a catch-up subscriber that falls 1,000 events behind ends with SLOW_SUBSCRIBER; the process and the others carry on', async () => {
    const { subscriber, witness, burst } = await burstRoom({ after: 0 });
    const last = burst(1100);
    expect(await subscriber.done).toEqual({ kind: 'complete' });
    expect(subscriber.errors.map((error) => error.extensions?.code)).toContain('SLOW_SUBSCRIBER');
    await witness.next((frame) => frame.type === 'message' && frame.message_id === last);
  });

  test('a live subscriber keeps no queue of its own: a burst goes to its socket whole, in order, where Bun bounds what waits (1 MiB, then the socket is closed)', async () => {
    const { subscriber, witness, burst, firstId } = await burstRoom({});
    const last = burst(1100);
    await subscriber.next((message) => Number(message.id) === last, "the burst's last message");
    expect(subscriber.events.slice(-1100).map((message) => Number(message.id))).toEqual(Array.from({ length: 1100 }, (_, i) => firstId + i));
    expect(subscriber.errors).toEqual([]);
    await witness.next((frame) => frame.type === 'message' && frame.message_id === last);
  });
});

describe('catch-up too far behind', () => {
  test('/ws: a history_gap frame names what was not replayed, then the newest messages, then live ones', async () => {
    const chatId = await room('gap ws');
    const ids = await fill(chatId, CATCH_UP_LIMIT + 5);
    const socket = served.kit.chat(bob.token);
    await socket.opened;
    socket.send({ type: 'join', chat_id: chatId, after: ids[0]! - 1 });
    const gap = await socket.next('history_gap');
    expect(gap).toEqual({ type: 'history_gap', chat_id: chatId, after: ids[0]! - 1, before: ids[5]! });
    const [live] = await fill(chatId, 1);
    await socket.next((frame) => frame.type === 'message' && frame.message_id === live);
    const delivered = socket.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id);
    expect(delivered).toEqual([...ids.slice(5), live]);
    // The frame comes before any replayed message.
    expect(socket.frames.findIndex((frame) => frame.type === 'history_gap')).toBeLessThan(socket.frames.findIndex((frame) => frame.type === 'message'));
  });

  test('GraphQL: the first result is a HISTORY_GAP error with `before`, then the newest messages', async () => {
    const chatId = await room('gap graphql');
    const ids = await fill(chatId, CATCH_UP_LIMIT + 2);
    const subscription = served.kit
      .graphql(bob.token)
      .subscribe<{ id: string }>(
        'subscription ($chatId: ID!, $after: ID) { messageAdded(chatId: $chatId, after: $after) { id } }',
        { chatId, after: 0 },
        { field: 'messageAdded' },
      );
    await subscription.next((event) => Number(event.id) === ids.at(-1));
    expect(subscription.errors).toHaveLength(1);
    expect(subscription.errors[0]!.extensions).toEqual({ code: 'HISTORY_GAP', after: '0', before: String(ids[2]) });
    expect(subscription.results[0]!.errors?.[0]?.extensions?.code).toBe('HISTORY_GAP');
    expect(subscription.events.map((event) => Number(event.id))).toEqual(ids.slice(2));
  });
});
