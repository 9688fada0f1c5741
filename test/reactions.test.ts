import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import type { z } from 'zod';
import { restRoutes } from '../src/rest/routes';
import type { ReactionEvent } from '../src/services/pubsub';
import { MAX_EMOJI_PER_MESSAGE } from '../src/services/reaction.service';
import { MAX_EMOJI_LENGTH } from '../src/services/validation';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import { type ChatClient, type Frame, MISSING_CHAT_ID, servedTestApp, withDeadline } from './support/sockets';

/**
 * Reactions on every transport: REST and GraphQL in-process (every refusal included), `/ws` frames
 * and graphql-ws subscriptions over real sockets. "Nothing was pushed" is shown by a later event the
 * same listener must get first.
 */

let fake: FakeGemini;
beforeAll(async () => {
  fake = await startFakeGemini();
}, 30_000);
afterAll(() => fake.stop());

let queries: string[] = [];
const served = servedTestApp(() => ({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url }), { logQuery: (query) => queries.push(query) });

interface ReactionJson {
  emoji: string;
  count: number;
  user_ids: number[];
}

/** The schema a route's description gives for `status`; a status it does not list fails the test. */
function documentedSchema(method: 'post' | 'delete', status: number): z.ZodType {
  const path = method === 'post' ? '/api/chats/{chat_id}/messages/{message_id}/reactions' : '/api/chats/{chat_id}/messages/{message_id}/reactions/{emoji}';
  const { route } = restRoutes.find((candidate) => candidate.route.method === method && candidate.route.path === path)!;
  const response = route.responses[status] as { content?: Record<string, { schema: z.ZodType }> } | undefined;
  if (!response?.content) throw new Error(`${method} ${path} answered ${status}, which its description does not list`);
  return response.content['application/json']!.schema;
}

/** A reaction route's answer, checked against what the OpenAPI description says of its status. */
async function answer(method: 'post' | 'delete', response: Promise<Response>): Promise<{ status: number; body: any }> {
  const res = await response;
  const body = await res.json();
  const checked = documentedSchema(method, res.status).safeParse(body);
  if (!checked.success) throw new Error(`${res.status} ${JSON.stringify(body)}: ${checked.error.message}`);
  return { status: res.status, body };
}

const react = (user: TestUser, chatId: number, messageId: number | string, emoji: unknown, app: TestApp = served.t) =>
  answer('post', app.request(`/api/chats/${chatId}/messages/${messageId}/reactions`, { method: 'POST', token: user.token, json: { emoji } }));
const unreact = (user: TestUser, chatId: number, messageId: number | string, encodedEmoji: string) =>
  answer('delete', served.t.request(`/api/chats/${chatId}/messages/${messageId}/reactions/${encodedEmoji}`, { method: 'DELETE', token: user.token }));

/** Expects a 200 and returns the reactions it answered. */
async function ok(result: Promise<{ status: number; body: any }>): Promise<ReactionJson[]> {
  const { status, body } = await result;
  expect({ status, body }).toMatchObject({ status: 200 });
  return body as ReactionJson[];
}

async function json<T = any>(response: Promise<Response>): Promise<T> {
  const res = await response;
  const text = await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** A group chat of `owner` with `members`; returns its id. */
async function groupChat(owner: TestUser, members: TestUser[] = []): Promise<number> {
  const chat = await json<{ id: number }>(
    served.t.request('/api/chats', {
      method: 'POST',
      token: owner.token,
      json: { name: 'reactions', is_group: true, participant_usernames: members.map((m) => m.username) },
    }),
  );
  return chat.id;
}

const post = async (user: TestUser, chatId: number, content: string) =>
  (await json<{ id: number }>(served.t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } }))).id;
const history = (user: TestUser, chatId: number) =>
  json<{ id: number; content: string; reactions: ReactionJson[] }[]>(served.t.request(`/api/chats/${chatId}/messages`, { token: user.token }));

/** Alice's group chat with bob and one message of alice's in it. */
async function room() {
  const [alice, bob, outsider] = await Promise.all([signUp(served.t), signUp(served.t), signUp(served.t)]);
  const chatId = await groupChat(alice, [bob]);
  const messageId = await post(alice, chatId, 'react to me');
  return { alice, bob, outsider, chatId, messageId };
}

let markers = 0;

/**
 * The chat's `chat:reaction` events from now on, as every transport hears them. `next()` waits for
 * the next one, so "nothing was published" is shown by the next event being a later change. What
 * was published before the call but arrives after it (over Redis) is left out: everything up to a
 * marker published on the same topic, which arrives after it.
 */
async function recordReactions(chatId: number) {
  const { pubsub } = served.t.app.services;
  const events: ReactionEvent[] = [];
  let claimed = 0;
  let wake: (() => void) | null = null;
  const marker = -++markers;
  let markerSeen = false;
  const listening = pubsub.on('chat:reaction', chatId, (event) => {
    if (event.messageId === marker) {
      markerSeen = true;
      events.length = 0;
    } else events.push(event);
    wake?.();
  });
  await listening.ready;
  const waitFor = async (arrived: () => boolean, what: string) => {
    while (!arrived()) await withDeadline(new Promise<void>((resolve) => (wake = resolve)), () => `no ${what} in chat ${chatId}`);
  };
  pubsub.publish('chat:reaction', chatId, { chatId, messageId: marker, emoji: '', userId: 0, username: '', action: 'added', reactions: [] });
  await waitFor(() => markerSeen, 'marker');
  return {
    async next(): Promise<ReactionEvent> {
      await waitFor(() => events.length > claimed, 'reaction event');
      return events[claimed++]!;
    },
    stop: () => listening.stop(),
  };
}

const THUMBS_UP = '👍';
const FAMILY = '👩‍👩‍👧';
/** MAX_EMOJI_PER_MESSAGE + 1 different emoji: 😀 onwards. */
const DIFFERENT_EMOJI = Array.from({ length: MAX_EMOJI_PER_MESSAGE + 1 }, (_, i) => String.fromCodePoint(0x1f600 + i));

describe('REST', () => {
  test('POST adds the caller’s reaction and answers the message’s reactions; again changes nothing and publishes nothing', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const events = await recordReactions(chatId);
    expect(await ok(react(alice, chatId, messageId, THUMBS_UP))).toEqual([{ emoji: THUMBS_UP, count: 1, user_ids: [alice.id] }]);
    expect(await events.next()).toEqual({
      chatId,
      messageId,
      emoji: THUMBS_UP,
      userId: alice.id,
      username: alice.username,
      action: 'added',
      reactions: [{ emoji: THUMBS_UP, count: 1, userIds: [alice.id] }],
    });
    expect(await ok(react(alice, chatId, messageId, THUMBS_UP))).toEqual([{ emoji: THUMBS_UP, count: 1, user_ids: [alice.id] }]);
    expect(await ok(react(bob, chatId, messageId, THUMBS_UP))).toEqual([{ emoji: THUMBS_UP, count: 2, user_ids: [alice.id, bob.id] }]);
    // The repeated add published nothing: the next event is bob's.
    expect(await events.next()).toMatchObject({ userId: bob.id, action: 'added' });
    events.stop();
  });

  test('DELETE (the emoji URL-encoded, a ZWJ sequence too) removes it; removing what is not there changes nothing and publishes nothing', async () => {
    const { alice, bob, chatId, messageId } = await room();
    await ok(react(alice, chatId, messageId, FAMILY));
    await ok(react(bob, chatId, messageId, FAMILY));
    const events = await recordReactions(chatId);
    expect(await ok(unreact(alice, chatId, messageId, encodeURIComponent(FAMILY)))).toEqual([{ emoji: FAMILY, count: 1, user_ids: [bob.id] }]);
    expect(await events.next()).toMatchObject({ emoji: FAMILY, userId: alice.id, username: alice.username, action: 'removed' });
    expect(await ok(unreact(alice, chatId, messageId, encodeURIComponent(FAMILY)))).toEqual([{ emoji: FAMILY, count: 1, user_ids: [bob.id] }]);
    expect(await ok(unreact(alice, chatId, messageId, encodeURIComponent(THUMBS_UP)))).toEqual([{ emoji: FAMILY, count: 1, user_ids: [bob.id] }]);
    expect(await ok(unreact(bob, chatId, messageId, encodeURIComponent(FAMILY)))).toEqual([]);
    expect(await events.next()).toMatchObject({ emoji: FAMILY, userId: bob.id, action: 'removed', reactions: [] });
    events.stop();
  });

  test('emoji come in first-use order, each with its users in the order they reacted, in the answers and in history', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const carol = await signUp(served.t);
    await json(served.t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: alice.token, json: { username: carol.username } }));
    const other = await post(bob, chatId, 'another message');
    await ok(react(bob, chatId, messageId, '🎉'));
    await ok(react(alice, chatId, messageId, THUMBS_UP));
    await ok(react(carol, chatId, messageId, '🎉'));
    await ok(react(bob, chatId, messageId, THUMBS_UP));
    const order = [
      { emoji: '🎉', count: 2, user_ids: [bob.id, carol.id] },
      { emoji: THUMBS_UP, count: 2, user_ids: [alice.id, bob.id] },
    ];
    expect(await ok(react(carol, chatId, messageId, '❤️'))).toEqual([...order, { emoji: '❤️', count: 1, user_ids: [carol.id] }]);
    expect((await history(alice, chatId)).map((message) => [message.id, message.reactions])).toEqual([
      [messageId, [...order, { emoji: '❤️', count: 1, user_ids: [carol.id] }]],
      [other, []],
    ]);
    // An emoji's place is that of its oldest remaining reaction.
    expect(await ok(unreact(bob, chatId, messageId, encodeURIComponent('🎉')))).toEqual([
      { emoji: THUMBS_UP, count: 2, user_ids: [alice.id, bob.id] },
      { emoji: '🎉', count: 1, user_ids: [carol.id] },
      { emoji: '❤️', count: 1, user_ids: [carol.id] },
    ]);
  });

  test('anything but exactly one emoji is 422 with FastAPI’s detail, in the body and in the path', async () => {
    const { alice, chatId, messageId } = await room();
    const emojiIssue = (loc: 'body' | 'path') => ({ type: 'value_error', loc: [loc, 'emoji'], msg: 'Must be exactly one emoji, such as 👍' });
    const longChain = Array.from({ length: MAX_EMOJI_LENGTH }, () => THUMBS_UP).join('\u200d');
    for (const emoji of ['ok', 'a', '👍👍', '', '1', '42', '#', '❤', '©', ' 👍', '👍 ', '🇺', longChain]) {
      expect({ emoji, ...(await react(alice, chatId, messageId, emoji)) }).toEqual({ emoji, status: 422, body: { detail: [emojiIssue('body')] } });
    }
    for (const emoji of [7, null, ['👍'], { emoji: '👍' }]) {
      expect({ emoji, ...(await react(alice, chatId, messageId, emoji)) }).toEqual({
        emoji,
        status: 422,
        body: { detail: [{ type: 'string_type', loc: ['body', 'emoji'], msg: 'Input should be a valid string' }] },
      });
    }
    const missing = await answer(
      'post',
      served.t.request(`/api/chats/${chatId}/messages/${messageId}/reactions`, { method: 'POST', token: alice.token, json: {} }),
    );
    expect(missing).toEqual({ status: 422, body: { detail: [{ type: 'missing', loc: ['body', 'emoji'], msg: 'Field required' }] } });
    for (const encoded of ['ok', encodeURIComponent('👍👍'), '1', encodeURIComponent('❤')]) {
      expect({ encoded, ...(await unreact(alice, chatId, messageId, encoded)) }).toEqual({ encoded, status: 422, body: { detail: [emojiIssue('path')] } });
    }
    expect((await react(alice, chatId, 'abc', THUMBS_UP)).body.detail[0].loc).toEqual(['path', 'message_id']);
    expect((await unreact(alice, chatId, 0, encodeURIComponent(THUMBS_UP))).body.detail[0].loc).toEqual(['path', 'message_id']);
    expect(await history(alice, chatId)).toEqual([expect.objectContaining({ id: messageId, reactions: [] })]);
  });

  test('skin tones, ZWJ sequences, flags, subdivision flags and keycaps are one emoji each', async () => {
    const { alice, chatId, messageId } = await room();
    const accepted = ['👍🏽', '👩🏻‍❤️‍💋‍👨🏼', '🏳️‍🌈', '🇺🇦', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '1️⃣', '❤️', '🫨'];
    for (const emoji of accepted) await ok(react(alice, chatId, messageId, emoji));
    expect((await ok(unreact(alice, chatId, messageId, encodeURIComponent('1️⃣')))).map((reaction) => reaction.emoji)).toEqual(
      accepted.filter((emoji) => emoji !== '1️⃣'),
    );
  });

  test('someone not in the chat gets 403, a chat that does not exist 404, as every chat route answers', async () => {
    const { alice, outsider, chatId, messageId } = await room();
    for (const call of [react(outsider, chatId, messageId, THUMBS_UP), unreact(outsider, chatId, messageId, encodeURIComponent(THUMBS_UP))]) {
      expect(await call).toEqual({ status: 403, body: { detail: 'Not authorized' } });
    }
    for (const call of [react(alice, MISSING_CHAT_ID, messageId, THUMBS_UP), unreact(alice, MISSING_CHAT_ID, messageId, encodeURIComponent(THUMBS_UP))]) {
      expect(await call).toEqual({ status: 404, body: { detail: 'Chat not found' } });
    }
    const unauthenticated = await served.t.request(`/api/chats/${chatId}/messages/${messageId}/reactions`, { method: 'POST', json: { emoji: THUMBS_UP } });
    expect(unauthenticated.status).toBe(401);
  });

  test('a message that does not exist, or is in another chat, is 404 "Message not found", and its reactions are out of reach', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const otherChat = await groupChat(alice, [bob]);
    const elsewhere = await post(bob, otherChat, 'in the other chat');
    await ok(react(bob, otherChat, elsewhere, THUMBS_UP));
    const notFound = { status: 404, body: { detail: 'Message not found' } };
    expect(await react(alice, chatId, 2_000_000_000, THUMBS_UP)).toEqual(notFound);
    expect(await react(alice, chatId, elsewhere, THUMBS_UP)).toEqual(notFound);
    expect(await unreact(bob, chatId, elsewhere, encodeURIComponent(THUMBS_UP))).toEqual(notFound);
    expect(await unreact(bob, otherChat, messageId, encodeURIComponent(THUMBS_UP))).toEqual(notFound);
    expect((await history(bob, otherChat)).map((message) => message.reactions)).toEqual([[{ emoji: THUMBS_UP, count: 1, user_ids: [bob.id] }]]);
  });

  test(`a message holds at most ${MAX_EMOJI_PER_MESSAGE} different emoji: past them 422 says so, and the ones there can still be added`, async () => {
    const { alice, bob, chatId, messageId } = await room();
    for (const emoji of DIFFERENT_EMOJI.slice(0, MAX_EMOJI_PER_MESSAGE)) await ok(react(alice, chatId, messageId, emoji));
    const msg = `This message already has ${MAX_EMOJI_PER_MESSAGE} different reactions: add one of those instead`;
    expect(await react(bob, chatId, messageId, DIFFERENT_EMOJI.at(-1))).toEqual({
      status: 422,
      body: { detail: [{ type: 'value_error', loc: ['body', 'emoji'], msg }] },
    });
    const reactions = await ok(react(bob, chatId, messageId, DIFFERENT_EMOJI[0]));
    expect(reactions).toHaveLength(MAX_EMOJI_PER_MESSAGE);
    expect(reactions[0]).toEqual({ emoji: DIFFERENT_EMOJI[0]!, count: 2, user_ids: [alice.id, bob.id] });
  });

  test('reactions go with their message when the chat is deleted', async () => {
    const { alice, chatId, messageId } = await room();
    await ok(react(alice, chatId, messageId, THUMBS_UP));
    await json(served.t.request(`/api/chats/${chatId}`, { method: 'DELETE', token: alice.token }));
    expect(await served.t.app.services.reactions.summariesOf([messageId])).toEqual(new Map());
  });

  test('the OpenAPI document describes both routes', async () => {
    const document = await json<{ paths: Record<string, Record<string, unknown>> }>(served.t.request('/openapi.json'));
    expect(Object.keys(document.paths['/api/chats/{chat_id}/messages/{message_id}/reactions']!)).toEqual(['post']);
    expect(Object.keys(document.paths['/api/chats/{chat_id}/messages/{message_id}/reactions/{emoji}']!)).toEqual(['delete']);
  });
});

describe('the rate of reaction changes', () => {
  let limited: TestApp;
  beforeAll(async () => {
    limited = await createTestApp({ MESSAGE_RATE_LIMIT: '1', MESSAGE_BURST: '2' });
  }, 30_000);
  afterAll(() => limited.cleanup());

  test('MESSAGE_RATE_LIMIT and MESSAGE_BURST hold for reactions per user, in a budget of their own', async () => {
    const alice = await signUp(limited);
    const chat = await json<{ id: number }>(limited.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'limited', is_group: true } }));
    const message = await json<{ id: number }>(
      limited.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: alice.token, json: { content: 'hi' } }),
    );
    await ok(react(alice, chat.id, message.id, THUMBS_UP, limited));
    await ok(react(alice, chat.id, message.id, '🎉', limited));
    const refused = await limited.request(`/api/chats/${chat.id}/messages/${message.id}/reactions`, {
      method: 'POST',
      token: alice.token,
      json: { emoji: '❤️' },
    });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({ detail: 'Too many reactions: at most 1 a second (2 at once)' });
    // Messages keep their own budget.
    const sent = await limited.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: alice.token, json: { content: 'still here' } });
    expect(sent.status).toBe(200);
  });
});

describe('GraphQL', () => {
  const ADD =
    'mutation ($chatId: ID!, $messageId: ID!, $emoji: String!) { addReaction(chatId: $chatId, messageId: $messageId, emoji: $emoji) { emoji count userIds } }';
  const REMOVE =
    'mutation ($chatId: ID!, $messageId: ID!, $emoji: String!) { removeReaction(chatId: $chatId, messageId: $messageId, emoji: $emoji) { emoji count userIds } }';

  async function gql(query: string, variables: Record<string, unknown>, user: TestUser) {
    const response = await served.t.request('/graphql', { method: 'POST', json: { query, variables }, token: user.token });
    return (await response.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
  }
  async function data(query: string, variables: Record<string, unknown>, user: TestUser) {
    const body = await gql(query, variables, user);
    expect(body.errors).toBeUndefined();
    return body.data;
  }
  async function failure(query: string, variables: Record<string, unknown>, user: TestUser): Promise<[string | undefined, string]> {
    const body = await gql(query, variables, user);
    expect(body.errors).toHaveLength(1);
    return [body.errors![0]!.extensions?.code, body.errors![0]!.message];
  }

  test('addReaction and removeReaction answer the reactions; again changes nothing', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const target = { chatId: String(chatId), messageId: String(messageId) };
    expect((await data(ADD, { ...target, emoji: THUMBS_UP }, alice)).addReaction).toEqual([{ emoji: THUMBS_UP, count: 1, userIds: [String(alice.id)] }]);
    expect((await data(ADD, { ...target, emoji: THUMBS_UP }, alice)).addReaction).toEqual([{ emoji: THUMBS_UP, count: 1, userIds: [String(alice.id)] }]);
    expect((await data(ADD, { ...target, emoji: FAMILY }, bob)).addReaction).toEqual([
      { emoji: THUMBS_UP, count: 1, userIds: [String(alice.id)] },
      { emoji: FAMILY, count: 1, userIds: [String(bob.id)] },
    ]);
    expect((await data(REMOVE, { ...target, emoji: THUMBS_UP }, alice)).removeReaction).toEqual([{ emoji: FAMILY, count: 1, userIds: [String(bob.id)] }]);
    expect((await data(REMOVE, { ...target, emoji: THUMBS_UP }, alice)).removeReaction).toEqual([{ emoji: FAMILY, count: 1, userIds: [String(bob.id)] }]);
  });

  test('each refusal carries its code', async () => {
    const { alice, outsider, chatId, messageId } = await room();
    const target = { chatId: String(chatId), messageId: String(messageId) };
    for (const mutation of [ADD, REMOVE]) {
      expect(await failure(mutation, { ...target, emoji: 'ok' }, alice)).toEqual(['BAD_USER_INPUT', 'emoji: Must be exactly one emoji, such as 👍']);
      expect(await failure(mutation, { ...target, emoji: THUMBS_UP }, outsider)).toEqual(['FORBIDDEN', 'Not authorized']);
      expect(await failure(mutation, { ...target, chatId: String(MISSING_CHAT_ID), emoji: THUMBS_UP }, alice)).toEqual(['NOT_FOUND', 'Chat not found']);
      expect(await failure(mutation, { ...target, messageId: '2000000000', emoji: THUMBS_UP }, alice)).toEqual(['NOT_FOUND', 'Message not found']);
      expect((await failure(mutation, { ...target, messageId: 'x', emoji: THUMBS_UP }, alice))[0]).toBe('BAD_USER_INPUT');
    }
  });

  test('Message.reactions in the history and on the last message; a message just sent has none', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const second = await post(bob, chatId, 'second');
    await ok(react(bob, chatId, messageId, THUMBS_UP));
    await ok(react(alice, chatId, second, '🎉'));
    const { chat } = await data(
      'query ($id: ID!) { chat(id: $id) { messages { edges { node { id reactions { emoji count userIds } } } } lastMessage { id reactions { emoji } } } }',
      { id: String(chatId) },
      alice,
    );
    expect(chat.messages.edges.map((edge: any) => edge.node)).toEqual([
      { id: String(messageId), reactions: [{ emoji: THUMBS_UP, count: 1, userIds: [String(bob.id)] }] },
      { id: String(second), reactions: [{ emoji: '🎉', count: 1, userIds: [String(alice.id)] }] },
    ]);
    expect(chat.lastMessage).toEqual({ id: String(second), reactions: [{ emoji: '🎉' }] });
    const sent = await data(
      'mutation ($chatId: ID!) { sendMessage(chatId: $chatId, content: "fresh") { reactions { emoji } } }',
      { chatId: String(chatId) },
      bob,
    );
    expect(sent.sendMessage).toEqual({ reactions: [] });
  });
});

describe('/ws', () => {
  /** A `/ws` socket of `user`, open, with its memberships loaded. */
  async function connect(user: TestUser): Promise<ChatClient> {
    const socket = served.kit.chat(user.token);
    await socket.opened;
    await socket.sync();
    return socket;
  }
  const isReaction =
    (predicate: (frame: Frame) => boolean = () => true) =>
    (frame: Frame) =>
      frame.type === 'reaction' && predicate(frame);

  test('react and unreact frames: every socket of every participant gets `reaction`, joined or not, the sender’s included', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const aliceSocket = await connect(alice);
    const bobSocket = await connect(bob);
    await aliceSocket.join(chatId);
    aliceSocket.send({ type: 'react', chat_id: chatId, message_id: messageId, emoji: FAMILY });
    const added = {
      type: 'reaction',
      chat_id: chatId,
      message_id: messageId,
      emoji: FAMILY,
      user_id: alice.id,
      username: alice.username,
      action: 'added',
      reactions: [{ emoji: FAMILY, count: 1, user_ids: [alice.id] }],
    };
    expect(await aliceSocket.next(isReaction())).toEqual(added);
    expect(await bobSocket.next(isReaction())).toEqual(added);

    // Again: no change, no frame; bob's unreact of what he never added neither. The next frames are
    // those of a later change (another emoji, so that it cannot overtake the repeated one).
    aliceSocket.send({ type: 'react', chat_id: chatId, message_id: messageId, emoji: FAMILY });
    bobSocket.send({ type: 'unreact', chat_id: chatId, message_id: messageId, emoji: FAMILY });
    aliceSocket.send({ type: 'react', chat_id: chatId, message_id: messageId, emoji: THUMBS_UP });
    const both = [
      { emoji: FAMILY, count: 1, user_ids: [alice.id] },
      { emoji: THUMBS_UP, count: 1, user_ids: [alice.id] },
    ];
    const addedToo = { ...added, emoji: THUMBS_UP, reactions: both };
    expect(await aliceSocket.next(isReaction())).toEqual(addedToo);
    expect(await bobSocket.next(isReaction())).toEqual(addedToo);

    aliceSocket.send({ type: 'unreact', chat_id: chatId, message_id: messageId, emoji: THUMBS_UP });
    const removed = { ...addedToo, action: 'removed', reactions: both.slice(0, 1) };
    expect(await aliceSocket.next(isReaction())).toEqual(removed);
    expect(await bobSocket.next(isReaction())).toEqual(removed);
    expect(aliceSocket.frames.filter((frame) => frame.type === 'error' && frame.error !== 'Chat not found')).toEqual([]);
    expect(bobSocket.frames.filter((frame) => frame.type === 'error' && frame.error !== 'Chat not found')).toEqual([]);
  });

  test('someone outside the chat hears nothing of it', async () => {
    const { alice, outsider, chatId, messageId } = await room();
    const ownChat = await groupChat(outsider);
    const ownMessage = await post(outsider, ownChat, 'mine');
    const outsiderSocket = await connect(outsider);
    await ok(react(alice, chatId, messageId, THUMBS_UP));
    await ok(react(outsider, ownChat, ownMessage, THUMBS_UP));
    expect(await outsiderSocket.next(isReaction())).toMatchObject({ chat_id: ownChat, message_id: ownMessage });
  });

  test('a bad frame gets an error frame and the socket carries on', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const otherChat = await groupChat(bob);
    const elsewhere = await post(bob, otherChat, 'elsewhere');
    const socket = await connect(alice);
    const errors: [unknown, string][] = [
      [{ type: 'react', chat_id: chatId, message_id: messageId, emoji: '👍👍' }, 'emoji: Must be exactly one emoji, such as 👍'],
      [{ type: 'unreact', chat_id: chatId, message_id: messageId, emoji: 'x' }, 'emoji: Must be exactly one emoji, such as 👍'],
      [{ type: 'react', chat_id: chatId, message_id: messageId }, 'emoji: Field required'],
      [{ type: 'react', chat_id: chatId, emoji: THUMBS_UP }, 'message_id: Field required'],
      [{ type: 'react', chat_id: chatId, message_id: 2_000_000_000, emoji: THUMBS_UP }, 'Message not found'],
      [{ type: 'react', chat_id: otherChat, message_id: elsewhere, emoji: THUMBS_UP }, 'Not authorized'],
      [{ type: 'react', chat_id: MISSING_CHAT_ID, message_id: messageId, emoji: THUMBS_UP }, 'Chat not found'],
    ];
    for (const [frame, error] of errors) {
      socket.send(frame);
      expect(await socket.nextError()).toEqual({ type: 'error', error });
    }
    socket.send({ type: 'react', chat_id: chatId, message_id: messageId, emoji: THUMBS_UP });
    expect(await socket.next(isReaction())).toMatchObject({ action: 'added', emoji: THUMBS_UP });
    expect(socket.isClosed()).toBe(false);
  });

  test('a socket catching up (join with `after`) gets reactions too, and the replayed messages carry theirs', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const missed = await post(alice, chatId, 'missed');
    await ok(react(alice, chatId, missed, '🎉'));
    const socket = await connect(bob);
    socket.send({ type: 'join', chat_id: chatId, after: messageId });
    const replayed = await socket.next((frame) => frame.type === 'message' && frame.message_id === missed);
    expect((replayed.message as { reactions: unknown }).reactions).toEqual([{ emoji: '🎉', count: 1, user_ids: [alice.id] }]);
    await socket.sync();
    await ok(react(alice, chatId, messageId, THUMBS_UP));
    expect(await socket.next(isReaction())).toMatchObject({ message_id: messageId, emoji: THUMBS_UP, action: 'added' });
    // Live messages carry theirs: none yet.
    const live = await post(alice, chatId, 'live');
    expect(((await socket.next((frame) => frame.type === 'message' && frame.message_id === live)).message as { reactions: unknown }).reactions).toEqual([]);
  });

  test('a bot answer can be reacted to once it is complete; while it streams it is not in the history (404)', async () => {
    const { alice, bob, chatId } = await room();
    const socket = await connect(bob);
    await socket.join(chatId);
    fake.reply({ kind: 'text', chunks: ['Thinking… ', 'done.'], holdAt: 1 });
    const request = fake.nextRequest();
    await post(alice, chatId, '/bot say something');
    const delta = await socket.next((frame) => frame.type === 'bot_stream' && frame.is_complete === false);
    const answerId = delta.message_id as number;
    expect(await react(bob, chatId, answerId, THUMBS_UP)).toEqual({ status: 404, body: { detail: 'Message not found' } });
    (await request).release();
    await socket.next((frame) => frame.type === 'bot_stream' && frame.is_complete === true);
    await served.t.app.services.bot.idle();
    expect(await ok(react(bob, chatId, answerId, THUMBS_UP))).toEqual([{ emoji: THUMBS_UP, count: 1, user_ids: [bob.id] }]);
    expect(await socket.next(isReaction())).toMatchObject({ message_id: answerId, action: 'added' });
    expect((await history(alice, chatId)).at(-1)).toMatchObject({
      id: answerId,
      content: 'Thinking… done.',
      reactions: [{ emoji: THUMBS_UP, count: 1, user_ids: [bob.id] }],
    });
  });
});

describe('graphql-ws reactionChanged', () => {
  const SUBSCRIPTION =
    'subscription ($chatId: ID!) { reactionChanged(chatId: $chatId) { chatId messageId emoji userId username action reactions { emoji count userIds } } }';

  test('a participant hears every change of the chat until they are no longer in it', async () => {
    const { alice, bob, chatId, messageId } = await room();
    const subscription = served.kit
      .graphql(bob.token)
      .subscribe(SUBSCRIPTION, { chatId: String(chatId) }, { field: 'reactionChanged', ready: ['chat:reaction', chatId] });
    await subscription.ready;
    await ok(react(alice, chatId, messageId, THUMBS_UP));
    await ok(react(alice, chatId, messageId, THUMBS_UP));
    await ok(unreact(alice, chatId, messageId, encodeURIComponent(THUMBS_UP)));
    const event = {
      chatId: String(chatId),
      messageId: String(messageId),
      emoji: THUMBS_UP,
      userId: String(alice.id),
      username: alice.username,
      action: 'ADDED',
      reactions: [{ emoji: THUMBS_UP, count: 1, userIds: [String(alice.id)] }],
    };
    expect(await subscription.next(() => true)).toEqual(event);
    // The repeated add published nothing: the next event is the removal.
    expect(await subscription.next(() => true)).toEqual({ ...event, action: 'REMOVED', reactions: [] });

    await json(served.t.request(`/api/chats/${chatId}/participants/${bob.id}`, { method: 'DELETE', token: alice.token }));
    expect(await subscription.done).toEqual({ kind: 'complete' });
    expect(subscription.errors).toEqual([]);
  });

  test('someone not in the chat is refused', async () => {
    const { outsider, chatId } = await room();
    const subscription = served.kit.graphql(outsider.token).subscribe(SUBSCRIPTION, { chatId: String(chatId) }, { field: 'reactionChanged' });
    expect(await subscription.done).toEqual({ kind: 'complete' });
    expect(subscription.errors.map((error) => [error.extensions?.code, error.message])).toEqual([['FORBIDDEN', 'Not authorized']]);
  });
});

describe('what reactions cost', () => {
  beforeEach(() => {
    queries = [];
  });

  test('a change is one read and one write, however many reactions the message has; a change that changes nothing only the read', async () => {
    const { alice, chatId, messageId } = await room();
    const crowded = await post(alice, chatId, 'crowded');
    for (const emoji of DIFFERENT_EMOJI.slice(0, 20)) await ok(react(alice, chatId, crowded, emoji));
    const statements = async (change: () => Promise<unknown>) => {
      queries = [];
      await change();
      return queries.length;
    };
    for (const target of [messageId, crowded]) {
      expect(await statements(() => ok(react(alice, chatId, target, THUMBS_UP)))).toBe(2);
      expect(await statements(() => ok(react(alice, chatId, target, THUMBS_UP)))).toBe(1);
      expect(await statements(() => ok(unreact(alice, chatId, target, encodeURIComponent(THUMBS_UP))))).toBe(2);
      expect(await statements(() => ok(unreact(alice, chatId, target, encodeURIComponent(THUMBS_UP))))).toBe(1);
    }
  });

  test('messageAdded { reactions } costs no query: a new message carries its (empty) reactions', async () => {
    const { alice, bob, chatId } = await room();
    const query = 'subscription ($chatId: ID!) { messageAdded(chatId: $chatId) { id content reactions { emoji count } } }';
    await post(alice, chatId, 'warm-up: membership cached');
    queries = [];
    await post(alice, chatId, 'unheard');
    const sendCost = queries.length;

    const listening = served.kit.graphql(bob.token).subscribe(query, { chatId: String(chatId) }, { field: 'messageAdded', ready: ['chat:message', chatId] });
    await listening.ready;
    // Bob's socket announces his presence with a query of its own: done before anything is counted.
    await served.t.app.services.presence.idle();
    queries = [];
    const id = await post(alice, chatId, 'heard');
    expect(await listening.next((event) => event.content === 'heard')).toEqual({ id: String(id), content: 'heard', reactions: [] });
    // No more than a send costs alone (less when the webhook outbox still remembers the chat has none), and none of the reactions table.
    expect(queries.length).toBeLessThanOrEqual(sendCost);
    expect(queries.filter((query) => query.includes('reactions'))).toEqual([]);
  });
});
