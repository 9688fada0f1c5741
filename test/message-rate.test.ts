import { afterAll, afterEach, beforeAll, describe, expect, setSystemTime, test } from 'bun:test';
import type { Server } from 'bun';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { socketKit, type SocketKit } from './support/sockets';

/**
 * MESSAGE_RATE_LIMIT counts a user's messages whatever carries them: REST, GraphQL and every `/ws`
 * socket draw on one bucket. The clock is held still, so no token comes back while a test runs
 * unless the test moves the clock.
 */

const BURST = 4;
const LIMIT_MESSAGE = `Too many messages: at most 1 a second (${BURST} at once)`;

let t: TestApp;
let server: Server<unknown>;
let kit: SocketKit;

beforeAll(async () => {
  t = await createTestApp({ MESSAGE_RATE_LIMIT: '1', MESSAGE_BURST: String(BURST) });
  server = t.listen();
  kit = socketKit(server, t.app.services);
});
afterEach(async () => {
  setSystemTime();
  await kit.closeAll();
});
afterAll(async () => {
  await kit.dispose();
  await server.stop(true);
  await t.cleanup();
});

const restSend = (user: TestUser, chatId: number, content: string) =>
  t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } });

async function graphqlSend(user: TestUser, chatId: number, content: string) {
  const response = await t.request('/graphql', {
    method: 'POST',
    token: user.token,
    json: { query: 'mutation ($chatId: ID!, $content: String!) { sendMessage(chatId: $chatId, content: $content) { id } }', variables: { chatId, content } },
  });
  return (await response.json()) as { data?: { sendMessage: { id: number } } | null; errors?: { message: string; extensions: Record<string, unknown> }[] };
}

async function storedContents(user: TestUser, chatId: number): Promise<string[]> {
  const response = await t.request(`/api/chats/${chatId}/messages?limit=200`, { token: user.token });
  return ((await response.json()) as { content: string }[]).map((message) => message.content);
}

async function roomOf(owner: TestUser, guest: TestUser): Promise<number> {
  const chat = (await (await t.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'rate', is_group: true } })).json()) as { id: number };
  await t.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: owner.token, json: { username: guest.username } });
  return chat.id;
}

/** Alice and Bob in a room of Alice's, one socket of Alice's joined to it, and the clock held still. */
async function roomWithSocket() {
  const alice = await signUp(t);
  const bob = await signUp(t);
  const chatId = await roomOf(alice, bob);
  const socket = kit.chat(alice.token);
  await socket.opened;
  await socket.join(chatId);
  setSystemTime(new Date());
  return { alice, bob, chatId, socket };
}

describe('MESSAGE_RATE_LIMIT=1, MESSAGE_BURST=4', () => {
  test("one user's sends over REST, GraphQL and /ws share one budget; another user's are not touched", async () => {
    const { alice, bob, chatId, socket } = await roomWithSocket();

    // The burst, spread over the three transports.
    expect((await restSend(alice, chatId, 'rest 1')).status).toBe(200);
    expect((await graphqlSend(alice, chatId, 'graphql 1')).errors).toBeUndefined();
    socket.send({ type: 'message', chat_id: chatId, content: 'ws 1' });
    await socket.next((frame) => frame.type === 'message' && frame.content === 'ws 1', 'the echo of ws 1');
    expect((await restSend(alice, chatId, 'rest 2')).status).toBe(200);

    // Over it, each transport answers in its own way, and nothing is stored.
    socket.send({ type: 'message', chat_id: chatId, content: 'ws refused' });
    expect(await socket.nextError()).toEqual({ type: 'error', error: LIMIT_MESSAGE });
    expect(socket.isClosed()).toBe(false);

    const overGraphql = await graphqlSend(alice, chatId, 'graphql refused');
    expect(overGraphql.data ?? null).toBeNull();
    expect(overGraphql.errors?.[0]).toMatchObject({ message: LIMIT_MESSAGE, extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 1 } });

    const overRest = await restSend(alice, chatId, 'rest refused');
    expect(overRest.status).toBe(429);
    expect(overRest.headers.get('retry-after')).toBe('1');
    expect(await overRest.json()).toEqual({ detail: LIMIT_MESSAGE });

    // Bob's budget is his own.
    expect((await restSend(bob, chatId, 'bob 1')).status).toBe(200);
    expect(await storedContents(bob, chatId)).toEqual(['rest 1', 'graphql 1', 'ws 1', 'rest 2', 'bob 1']);

    // A second later one token is back, for whichever transport asks first.
    setSystemTime(new Date(Date.now() + 1_000));
    socket.send({ type: 'message', chat_id: chatId, content: 'ws 2' });
    await socket.next((frame) => frame.type === 'message' && frame.content === 'ws 2', 'the echo of ws 2');
    expect((await restSend(alice, chatId, 'rest refused again')).status).toBe(429);
  });

  test('input refused costs no message: more bad frames and bodies than the burst, then the whole burst still goes', async () => {
    const { alice, chatId, socket } = await roomWithSocket();

    for (let i = 0; i <= BURST; i++) {
      socket.send({ type: 'message', chat_id: chatId, content: 5 });
      expect(await socket.nextError()).toEqual({ type: 'error', error: 'content: Input should be a valid string' });
      expect((await restSend(alice, chatId, ' ')).status).toBe(422);
    }
    const contents = Array.from({ length: BURST }, (_, i) => `after the refusals ${i}`);
    for (const content of contents) expect((await restSend(alice, chatId, content)).status).toBe(200);
    expect(await storedContents(alice, chatId)).toEqual(contents);
  });

  test('a second socket of the same user buys no extra messages', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chatId = await roomOf(alice, bob);
    const sockets = [kit.chat(alice.token), kit.chat(alice.token)];
    for (const socket of sockets) {
      await socket.opened;
      await socket.join(chatId);
    }
    setSystemTime(new Date());

    const sent = [0, 1].map((side) => Array.from({ length: BURST / 2 + 1 }, (_, i) => `socket ${side} message ${i}`));
    for (const [side, contents] of sent.entries()) for (const content of contents) sockets[side]!.send({ type: 'message', chat_id: chatId, content });
    // Each frame is answered on its socket: with the echo of its message, or with an error frame.
    const answers = await Promise.all(
      sockets.map(async (socket, side) => {
        const mine = (frame: { type: string; content?: unknown }) =>
          frame.type === 'error' || (frame.type === 'message' && sent[side]!.includes(frame.content as string));
        return Promise.all(sent[side]!.map(() => socket.next(mine, 'an answer to one of its messages')));
      }),
    );
    const refusals = answers.flat().filter((frame) => frame.type === 'error');
    expect(refusals).toEqual([
      { type: 'error', error: LIMIT_MESSAGE },
      { type: 'error', error: LIMIT_MESSAGE },
    ]);
    expect(await storedContents(alice, chatId)).toHaveLength(BURST);
  });
});
