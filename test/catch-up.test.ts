import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { socketKit, type SocketKit } from './support/sockets';

/**
 * Reconnecting clients ask for what they missed: `/ws` `join` with `after` and GraphQL
 * `messageAdded(chatId, after)` replay missed messages, then continue live, in id order, with
 * no duplicate and no gap.
 */

let t: TestApp;
let server: Server<unknown>;
let kit: SocketKit;
let alice: TestUser;
let bob: TestUser;
let outsider: TestUser;
let chatId: number;

beforeAll(async () => {
  t = await createTestApp();
  server = t.listen();
  kit = socketKit(server, t.app.services);
  [alice, bob, outsider] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
  const chat = await (await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'catch-up', is_group: true } })).json();
  chatId = chat.id;
  await t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: alice.token, json: { username: bob.username } });
});
afterEach(() => kit.closeAll());
afterAll(async () => {
  await kit.dispose();
  await server.stop(true);
  await t.cleanup();
});

async function send(content: string): Promise<number> {
  const response = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content } });
  return ((await response.json()) as { id: number }).id;
}

describe('/ws join with after', () => {
  test('replays the missed messages in order, then live ones, each once', async () => {
    const seen = await send('seen before the disconnect');
    const missed = [await send('missed 1'), await send('missed 2'), await send('missed 3')];
    const socket = kit.chat(bob.token);
    await socket.opened;
    socket.send({ type: 'join', chat_id: chatId, after: seen });
    await socket.sync();
    const live = await send('live after the reconnect');
    await socket.next((frame) => frame.type === 'message' && frame.message_id === live);
    const ids = socket.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id);
    expect(ids).toEqual([...missed, live]);
  });

  test('a message sent while the replay is read arrives once', async () => {
    const seen = await send('checkpoint');
    const socket = kit.chat(bob.token);
    await socket.opened;
    // The send races the join's replay query: whichever side sees it, the socket gets it once.
    socket.send({ type: 'join', chat_id: chatId, after: seen });
    const raced = await send('sent during the join');
    await socket.sync();
    const after = await send('after the join');
    await socket.next((frame) => frame.type === 'message' && frame.message_id === after);
    const ids = socket.frames.filter((frame) => frame.type === 'message').map((frame) => frame.message_id);
    expect(ids).toEqual([raced, after]);
  });

  test("leave ends the catch-up stream; the room's messages keep coming to the participant's socket, once", async () => {
    const seen = await send('before leave test');
    const socket = kit.chat(bob.token);
    await socket.opened;
    socket.send({ type: 'join', chat_id: chatId, after: seen });
    await socket.sync();
    await socket.leave(chatId);
    const afterLeave = await send('after leaving');
    await socket.next((frame) => frame.type === 'message' && frame.message_id === afterLeave);
    await socket.join(chatId);
    const marker = await send('after rejoining');
    await socket.next((frame) => frame.type === 'message' && frame.message_id === marker);
    for (const id of [afterLeave, marker]) expect(socket.frames.filter((frame) => frame.message_id === id)).toHaveLength(1);
  });

  test('a non-member asking for a replay gets "Not authorized" and nothing', async () => {
    const socket = kit.chat(outsider.token);
    await socket.opened;
    socket.send({ type: 'join', chat_id: chatId, after: 1 });
    expect((await socket.nextError()).error).toBe('Not authorized');
    expect(socket.frames.filter((frame) => frame.type === 'message')).toEqual([]);
  });

  test('a bad cursor is refused with an error frame', async () => {
    const socket = kit.chat(bob.token);
    await socket.opened;
    socket.send({ type: 'join', chat_id: chatId, after: 'yesterday' });
    expect((await socket.nextError()).error).toBe('after: Input should be a valid integer, unable to parse string as an integer');
  });
});

describe('GraphQL messageAdded(chatId, after)', () => {
  test('replays the missed messages in order, then live ones, each once', async () => {
    const seen = await send('graphql checkpoint');
    const missed = [await send('graphql missed 1'), await send('graphql missed 2')];
    const client = kit.graphql(bob.token);
    const subscription = client.subscribe<{ id: string; content: string }>(
      'subscription ($chatId: ID!, $after: ID) { messageAdded(chatId: $chatId, after: $after) { id content } }',
      { chatId, after: seen },
      { field: 'messageAdded', ready: ['chat:message', chatId] },
    );
    await subscription.ready;
    const live = await send('graphql live');
    await subscription.next((event) => Number(event.id) === live);
    expect(subscription.events.map((event) => Number(event.id))).toEqual([...missed, live]);
  });

  test('a non-member gets FORBIDDEN and no replay', async () => {
    const client = kit.graphql(outsider.token);
    const subscription = client.subscribe(
      'subscription ($chatId: ID!) { messageAdded(chatId: $chatId, after: "1") { id } }',
      { chatId },
      { field: 'messageAdded' },
    );
    await subscription.done;
    expect(subscription.errors.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
    expect(subscription.events).toEqual([]);
  });
});
