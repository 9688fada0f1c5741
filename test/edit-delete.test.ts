import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { AI_CHAT_GREETING } from '../src/services/chat.service';
import type { BotStreamEvent } from '../src/services/pubsub';
import type { messageJson } from '../src/serializers';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { startFakeGemini, type FakeGemini } from './support/fake-gemini';
import { groupRoom } from './support/rooms';
import { recordTopic } from './support/topic-recorder';

/**
 * Editing and deleting messages, in-process: REST and GraphQL, every refusal, what a change does
 * to the history, the read state and the bot's context, and what deleting a `/bot` ask or answer
 * does to its answer. Pushes over real sockets and catch-up: edit-delete-realtime.test.ts; two
 * instances and a Redis outage: edit-delete-cluster.test.ts.
 */

let fake: FakeGemini;
let t: TestApp;
/** Owns every room here. */
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let outsider: TestUser;

beforeAll(async () => {
  fake = await startFakeGemini();
  t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url });
  [alice, bob, carol, outsider] = await Promise.all([signUp(t), signUp(t), signUp(t), signUp(t)]);
}, 30_000);
afterAll(async () => {
  await t.app.services.bot.idle();
  await t.cleanup();
  await fake.stop();
});

type MessageJson = ReturnType<typeof messageJson>;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const room = (name: string) => groupRoom(t, alice, [bob, carol], name);

async function post(user: TestUser, chatId: number, content: string): Promise<MessageJson> {
  const response = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } });
  expect(response.status).toBe(200);
  return (await response.json()) as MessageJson;
}

const edit = (user: TestUser | null, chatId: number | string, messageId: number | string, body: unknown) =>
  t.request(`/api/chats/${chatId}/messages/${messageId}`, { method: 'PATCH', token: user?.token, json: body });
const remove = (user: TestUser | null, chatId: number | string, messageId: number | string) =>
  t.request(`/api/chats/${chatId}/messages/${messageId}`, { method: 'DELETE', token: user?.token });

async function history(user: TestUser, chatId: number): Promise<MessageJson[]> {
  const response = await t.request(`/api/chats/${chatId}/messages`, { token: user.token });
  expect(response.status).toBe(200);
  return (await response.json()) as MessageJson[];
}

async function expectDetail(response: Response, status: number, detail: unknown) {
  expect({ status: response.status, body: await response.json() }).toEqual({ status, body: { detail } });
}

/** The stored row, tombstones included. */
const stored = (id: number) =>
  t.app.services.db.message.findUniqueOrThrow({ where: { id }, select: { content: true, status: true, editedAt: true, deletedAt: true, askPending: true } });

async function gql(query: string, variables: Record<string, unknown>, user: TestUser | null) {
  const response = await t.request('/graphql', { method: 'POST', token: user?.token, json: { query, variables } });
  return (await response.json()) as { data?: any; errors?: { message: string; extensions?: Record<string, unknown> }[] };
}

/** Records the room's bot stream events through the room feed, as every reader gets them. */
function botEvents(chatId: number) {
  const events: BotStreamEvent[] = [];
  const listening = t.app.services.feeds.onBot(chatId, (event) => events.push(event));
  return { events, listening };
}

/** Holds the next answer after its first chunk; resolves once that chunk reached the room. */
async function answerHeld(chatId: number, asker: TestUser, question: string) {
  fake.reply({ kind: 'text', chunks: ['Partial ', 'rest'], holdAt: 1 });
  const request = fake.nextRequest();
  const deltas = await recordTopic(t.app.services.pubsub, 'chat:bot', chatId);
  const ask = await post(asker, chatId, question);
  const first = await deltas.next((event) => !event.isComplete, 'the first delta');
  deltas.stop();
  return { ask, answerId: first.messageId, request: await request };
}

describe('PATCH /api/chats/{chat_id}/messages/{message_id}', () => {
  test('the author rewrites the message: the answer, the history and the push carry the new content and edited_at', async () => {
    const chatId = await room('edit');
    const first = await post(alice, chatId, 'lunch at noon');
    const other = await post(bob, chatId, 'sounds good');
    const changes = await recordTopic(t.app.services.pubsub, 'chat:change', chatId);
    const before = Date.now();

    const response = await edit(alice, chatId, first.id, { content: 'lunch at one' });
    expect(response.status).toBe(200);
    const edited = (await response.json()) as MessageJson;
    expect(edited).toEqual({ ...first, content: 'lunch at one', edited_at: expect.stringMatching(ISO_UTC) });
    expect(new Date(edited.edited_at!).getTime()).toBeGreaterThanOrEqual(before - 1000);

    expect(await history(carol, chatId)).toEqual([edited, { ...other, edited_at: null }]);
    const change = await changes.next();
    expect(change).toMatchObject({ kind: 'updated', message: { id: first.id, chatId, content: 'lunch at one', username: alice.username } });
    expect(change.kind === 'updated' && change.message.editedAt?.toISOString()).toBe(edited.edited_at!);
    changes.stop();
  });

  test('the same content again changes nothing and pushes nothing', async () => {
    const chatId = await room('same content');
    const message = await post(alice, chatId, 'unchanged');
    const changes = await recordTopic(t.app.services.pubsub, 'chat:change', chatId);
    const response = await edit(alice, chatId, message.id, { content: 'unchanged' });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ...message, edited_at: null });
    expect((await stored(message.id)).editedAt).toBeNull();
    // A real edit after it is the first change the room hears of.
    await edit(alice, chatId, message.id, { content: 'changed' });
    expect(await changes.next()).toMatchObject({ kind: 'updated', message: { content: 'changed' } });
    expect(changes.events).toHaveLength(1);
    changes.stop();
  });

  test('content follows the rules of sending: 422 with the same issues', async () => {
    const chatId = await room('edit rules');
    const message = await post(alice, chatId, 'valid');
    const cases: [unknown, unknown][] = [
      [{ content: '   ' }, [{ type: 'value_error', loc: ['body', 'content'], msg: 'Message content must not be empty' }]],
      [{ content: 'x'.repeat(10_001) }, [{ type: 'value_error', loc: ['body', 'content'], msg: 'Message content must be at most 10000 characters' }]],
      [{ content: 'nul\0' }, [{ type: 'value_error', loc: ['body', 'content'], msg: 'String should not contain NUL characters' }]],
      [{ content: 42 }, [{ type: 'string_type', loc: ['body', 'content'], msg: 'Input should be a valid string' }]],
      [{}, [{ type: 'missing', loc: ['body', 'content'], msg: 'Field required' }]],
    ];
    for (const [body, detail] of cases) await expectDetail(await edit(alice, chatId, message.id, body), 422, detail);
    const malformed = await t.request(`/api/chats/${chatId}/messages/${message.id}`, {
      method: 'PATCH',
      token: alice.token,
      body: '{"content":',
      headers: { 'content-type': 'application/json' },
    });
    await expectDetail(malformed, 422, [{ type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error' }]);
    await expectDetail(await edit(alice, chatId, 'abc', { content: 'x' }), 422, [
      { type: 'int_parsing', loc: ['path', 'message_id'], msg: 'Input should be a valid integer, unable to parse string as an integer' },
    ]);
    await expectDetail(await edit(alice, 'abc', message.id, { content: 'x' }), 422, [
      { type: 'int_parsing', loc: ['path', 'chat_id'], msg: 'Input should be a valid integer, unable to parse string as an integer' },
    ]);
    expect((await history(alice, chatId)).map((m) => m.content)).toEqual(['valid']);
  });

  test('only the author, in a chat they are in: every refusal, and nothing changes', async () => {
    const chatId = await room('edit refusals');
    const elsewhere = await room('another room');
    const message = await post(bob, chatId, "bob's words");
    const theirs = await post(carol, elsewhere, 'in another room');
    await expectDetail(await edit(null, chatId, message.id, { content: 'x' }), 401, 'Not authenticated');
    await expectDetail(await edit(alice, chatId, message.id, { content: 'the owner cannot' }), 403, 'Only its author can edit a message');
    await expectDetail(await edit(carol, chatId, message.id, { content: 'nor can a member' }), 403, 'Only its author can edit a message');
    await expectDetail(await edit(outsider, chatId, message.id, { content: 'nor a stranger' }), 403, 'Not authorized');
    await expectDetail(await edit(bob, 2_000_000_000, message.id, { content: 'x' }), 404, 'Chat not found');
    await expectDetail(await edit(bob, chatId, 2_000_000_000, { content: 'x' }), 404, 'Message not found');
    // A message id of another chat, even one the caller may edit there, is not this chat's.
    await expectDetail(await edit(carol, chatId, theirs.id, { content: 'x' }), 404, 'Message not found');
    expect((await history(alice, chatId)).map((m) => [m.content, m.edited_at])).toEqual([["bob's words", null]]);
  });

  test('bot answers cannot be edited, not even by the owner', async () => {
    const chat = await (await t.request('/api/chats', { method: 'POST', token: alice.token, json: { is_ai_chat: true } })).json();
    const [greeting] = await history(alice, chat.id);
    expect(greeting).toMatchObject({ is_bot: true, content: AI_CHAT_GREETING });
    await expectDetail(await edit(alice, chat.id, greeting!.id, { content: 'I am the bot now' }), 403, 'Bot answers cannot be edited');
  });

  test('a deleted message cannot be edited: 404', async () => {
    const chatId = await room('edit deleted');
    const message = await post(alice, chatId, 'soon gone');
    expect((await remove(alice, chatId, message.id)).status).toBe(200);
    await expectDetail(await edit(alice, chatId, message.id, { content: 'back?' }), 404, 'Message not found');
  });

  test('an ask edited while it waits for its turn is answered as it reads then', async () => {
    const chatId = await room('edit pending ask');
    const { request } = await answerHeld(chatId, alice, '/bot first question');
    const waiting = await post(bob, chatId, '/bot what is for lunch?');
    expect((await edit(bob, chatId, waiting.id, { content: '/bot what is for dinner?' })).status).toBe(200);
    const next = fake.nextRequest();
    request.release();
    const sent = JSON.stringify((await next).body.contents);
    expect(sent).toContain(`${bob.username}: /bot what is for dinner?`);
    expect(sent).not.toContain('lunch');
    await t.app.services.bot.idle();
  });

  test('editing a /bot ask does not ask again; editing a message into one does not ask either', async () => {
    const chatId = await room('edit ask');
    const asked = fake.nextRequest();
    const ask = await post(alice, chatId, '/bot what is for lunch?');
    await asked;
    await t.app.services.bot.idle();
    const requests = fake.requests.length;
    const plain = await post(bob, chatId, 'just chatting');
    expect((await edit(alice, chatId, ask.id, { content: '/bot what is for dinner?' })).status).toBe(200);
    expect((await edit(bob, chatId, plain.id, { content: '/bot now a question?' })).status).toBe(200);
    await t.app.services.bot.answerAllPending();
    await t.app.services.bot.idle();
    expect(fake.requests).toHaveLength(requests);
    expect((await history(alice, chatId)).map((m) => [m.content, m.is_bot])).toEqual([
      ['/bot what is for dinner?', false],
      ['Echo: ' + `${alice.username}: /bot what is for lunch?`, true],
      ['/bot now a question?', false],
    ]);
  });
});

describe('DELETE /api/chats/{chat_id}/messages/{message_id}', () => {
  test('the author deletes their message: a tombstone with its text erased, gone from the history, pushed to the room', async () => {
    const chatId = await room('delete');
    const kept = await post(bob, chatId, 'kept');
    const gone = await post(alice, chatId, 'a secret I regret');
    const changes = await recordTopic(t.app.services.pubsub, 'chat:change', chatId);
    const response = await remove(alice, chatId, gone.id);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ message: 'Message deleted successfully' });
    expect(await changes.next()).toEqual({ kind: 'deleted', chatId, messageId: gone.id });
    expect(await stored(gone.id)).toEqual({ content: '', status: 'deleted', editedAt: null, deletedAt: expect.any(Date), askPending: false });
    expect((await history(carol, chatId)).map((m) => m.id)).toEqual([kept.id]);
    // Deleting it again: it is not there.
    await expectDetail(await remove(alice, chatId, gone.id), 404, 'Message not found');
    changes.stop();
  });

  test("the chat's owner may delete anyone's message, a bot answer too; members only their own", async () => {
    const chat = await (
      await t.request('/api/chats', {
        method: 'POST',
        token: alice.token,
        json: { is_ai_chat: true, is_group: true, participant_usernames: [bob.username, carol.username] },
      })
    ).json();
    const [greeting] = await history(alice, chat.id);
    const bobs = await post(bob, chat.id, "bob's");
    const alices = await post(alice, chat.id, "alice's");
    await expectDetail(await remove(carol, chat.id, bobs.id), 403, "Only its author or the chat's owner can delete a message");
    await expectDetail(await remove(bob, chat.id, alices.id), 403, "Only its author or the chat's owner can delete a message");
    await expectDetail(await remove(bob, chat.id, greeting!.id), 403, "Only its author or the chat's owner can delete a message");
    await expectDetail(await remove(outsider, chat.id, bobs.id), 403, 'Not authorized');
    await expectDetail(await remove(null, chat.id, bobs.id), 401, 'Not authenticated');
    await expectDetail(await remove(alice, 2_000_000_000, bobs.id), 404, 'Chat not found');
    await expectDetail(await remove(alice, chat.id, 2_000_000_000), 404, 'Message not found');
    await expectDetail(await remove(alice, chat.id, 'x'), 422, [
      { type: 'int_parsing', loc: ['path', 'message_id'], msg: 'Input should be a valid integer, unable to parse string as an integer' },
    ]);
    expect((await history(alice, chat.id)).map((m) => m.id)).toEqual([greeting!.id, bobs.id, alices.id]);

    expect((await remove(alice, chat.id, bobs.id)).status).toBe(200);
    expect((await remove(alice, chat.id, greeting!.id)).status).toBe(200);
    expect((await history(bob, chat.id)).map((m) => m.id)).toEqual([alices.id]);
  });

  test('unread counts, the last message and read receipts leave deleted messages out', async () => {
    const chatId = await room('read state');
    const earlier = await post(alice, chatId, 'earlier');
    expect((await t.request(`/api/chats/${chatId}/mark-read`, { method: 'POST', token: bob.token })).status).toBe(200);
    const later = await post(alice, chatId, 'later, then deleted');
    const chatOf = async (user: TestUser) => ((await (await t.request('/api/chats', { token: user.token })).json()) as any[]).find((c) => c.id === chatId);
    expect(await chatOf(bob)).toMatchObject({ unread_count: 1, last_message: 'later, then deleted' });
    expect((await remove(alice, chatId, later.id)).status).toBe(200);
    expect(await chatOf(bob)).toMatchObject({ unread_count: 0, last_message: 'earlier', last_message_time: earlier.created_at });
    const receipts = await (await t.request(`/api/chats/${chatId}/read-receipts`, { token: alice.token })).json();
    expect(Object.keys(receipts)).toEqual([String(earlier.id)]);
  });
});

describe("the bot's context", () => {
  test('a deleted message never reaches Gemini; an edited one reaches it as it reads now', async () => {
    const chatId = await room('context');
    const secret = await post(alice, chatId, 'the launch code is 0000');
    const plan = await post(bob, chatId, 'meet at noon');
    expect((await remove(alice, chatId, secret.id)).status).toBe(200);
    expect((await edit(bob, chatId, plan.id, { content: 'meet at one instead' })).status).toBe(200);
    const request = fake.nextRequest();
    await post(carol, chatId, '/bot when do we meet?');
    const sent = JSON.stringify((await request).body.contents);
    expect(sent).toContain(`${bob.username}: meet at one instead`);
    expect(sent).not.toContain('launch code');
    expect(sent).not.toContain('meet at noon');
    await t.app.services.bot.idle();
  });
});

describe('deleting a /bot ask or answer', () => {
  test('a pending ask is withdrawn: it is never answered', async () => {
    const chatId = await room('withdrawn ask');
    const { request } = await answerHeld(chatId, alice, '/bot first question');
    const second = await post(bob, chatId, '/bot second question');
    expect((await stored(second.id)).askPending).toBe(true);
    expect((await remove(bob, chatId, second.id)).status).toBe(200);
    expect((await stored(second.id)).askPending).toBe(false);
    const requests = fake.requests.length;
    request.release();
    await t.app.services.bot.idle();
    expect(fake.requests).toHaveLength(requests);
    expect((await history(alice, chatId)).map((m) => m.content)).toEqual(['/bot first question', 'Partial rest']);
  });

  test('an ask being answered: the answer is stopped, and what it wrote is kept', async () => {
    const chatId = await room('ask deleted mid-answer');
    const { events, listening } = botEvents(chatId);
    const { ask, answerId, request } = await answerHeld(chatId, alice, '/bot tell me a long story');
    expect((await remove(alice, chatId, ask.id)).status).toBe(200);
    await request.closed;
    expect(request.aborted).toBe(true);
    await t.app.services.bot.idle();
    expect(events.filter((event) => event.isComplete)).toEqual([
      { chatId, messageId: answerId, chunk: '', isComplete: true, fullResponse: 'Partial ', stopped: true, createdAt: expect.any(Date) },
    ]);
    expect((await history(bob, chatId)).map((m) => [m.id, m.content])).toEqual([[answerId, 'Partial ']]);
    listening.stop();
  });

  test('the owner deletes an answer being written: it ends with nothing to show, is stopped, and stays deleted', async () => {
    const chatId = await room('answer deleted mid-answer');
    const { events, listening } = botEvents(chatId);
    const { ask, answerId, request } = await answerHeld(chatId, bob, '/bot say something regrettable');
    await expectDetail(await remove(bob, chatId, answerId), 403, "Only its author or the chat's owner can delete a message");
    await expectDetail(await edit(alice, chatId, answerId, { content: 'x' }), 403, 'Bot answers cannot be edited');
    expect((await remove(alice, chatId, answerId)).status).toBe(200);
    await request.closed;
    await t.app.services.bot.idle();
    // One end, given when the deletion reached the room: the answer's own end after it is not delivered.
    expect(events.filter((event) => event.isComplete)).toEqual([
      { chatId, messageId: answerId, chunk: '', isComplete: true, fullResponse: '', stopped: true, createdAt: expect.any(Date) },
    ]);
    expect(await stored(answerId)).toMatchObject({ content: '', status: 'deleted' });
    expect((await history(alice, chatId)).map((m) => m.id)).toEqual([ask.id]);
    // The room goes on: the next ask is answered.
    const next = fake.nextRequest();
    await post(carol, chatId, '/bot are you still there?');
    expect(JSON.stringify((await next).body.contents)).not.toContain('Partial');
    await t.app.services.bot.idle();
    listening.stop();
  });
});

describe('the message rate limit', () => {
  test('edits and deletions share MESSAGE_RATE_LIMIT with sending: 429 past the burst', async () => {
    const limited = await createTestApp({ MESSAGE_RATE_LIMIT: '1', MESSAGE_BURST: '3' });
    try {
      const [owner] = [await signUp(limited)];
      const chat = await (await limited.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'limited' } })).json();
      const send = await limited.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: owner.token, json: { content: 'one' } });
      const { id } = (await send.json()) as { id: number };
      const path = `/api/chats/${chat.id}/messages/${id}`;
      expect((await limited.request(path, { method: 'PATCH', token: owner.token, json: { content: 'two' } })).status).toBe(200);
      expect((await limited.request(path, { method: 'DELETE', token: owner.token })).status).toBe(200);
      const refused = await limited.request(path, { method: 'PATCH', token: owner.token, json: { content: 'three' } });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect((await refused.json()).detail).toStartWith('Too many messages');
    } finally {
      await limited.cleanup();
    }
  });
});

describe('GraphQL', () => {
  const EDIT =
    'mutation ($chatId: ID!, $messageId: ID!, $content: String!) { editMessage(chatId: $chatId, messageId: $messageId, content: $content) { id content editedAt username } }';
  const DELETE = 'mutation ($chatId: ID!, $messageId: ID!) { deleteMessage(chatId: $chatId, messageId: $messageId) }';
  const MESSAGES = 'query ($id: ID!) { chat(id: $id) { messages { edges { node { id content editedAt } } } lastMessage { id content } } }';
  const codes = (body: { errors?: { extensions?: Record<string, unknown> }[] }) => body.errors?.map((error) => error.extensions?.code);

  test('editMessage answers the message as it is now; Message.editedAt; chat.messages leaves deleted ones out', async () => {
    const chatId = await room('graphql edit');
    const first = await post(bob, chatId, 'first draft');
    const second = await post(bob, chatId, 'to be deleted');
    const edited = await gql(EDIT, { chatId, messageId: first.id, content: 'second draft' }, bob);
    expect(edited.errors).toBeUndefined();
    expect(edited.data.editMessage).toEqual({
      id: String(first.id),
      content: 'second draft',
      editedAt: expect.stringMatching(ISO_UTC),
      username: bob.username,
    });
    expect(await gql(DELETE, { chatId, messageId: second.id }, bob)).toEqual({ data: { deleteMessage: true } });
    const { data } = await gql(MESSAGES, { id: chatId }, carol);
    expect(data.chat.messages.edges.map((edge: any) => edge.node)).toEqual([
      { id: String(first.id), content: 'second draft', editedAt: edited.data.editMessage.editedAt },
    ]);
    expect(data.chat.lastMessage).toEqual({ id: String(first.id), content: 'second draft' });
  });

  test('refusals carry their codes', async () => {
    const chatId = await room('graphql refusals');
    const message = await post(bob, chatId, 'mine');
    expect(codes(await gql(EDIT, { chatId, messageId: message.id, content: 'x' }, carol))).toEqual(['FORBIDDEN']);
    expect(codes(await gql(EDIT, { chatId, messageId: message.id, content: 'x' }, outsider))).toEqual(['FORBIDDEN']);
    expect(codes(await gql(EDIT, { chatId, messageId: message.id, content: 'x' }, null))).toEqual(['UNAUTHENTICATED']);
    expect(codes(await gql(EDIT, { chatId, messageId: 2_000_000_000, content: 'x' }, bob))).toEqual(['NOT_FOUND']);
    const empty = await gql(EDIT, { chatId, messageId: message.id, content: ' ' }, bob);
    expect(empty.errors?.[0]?.extensions).toEqual({
      code: 'BAD_USER_INPUT',
      issues: [{ type: 'value_error', loc: ['body', 'content'], msg: 'Message content must not be empty' }],
    });
    expect(codes(await gql(EDIT, { chatId, messageId: 'abc', content: 'x' }, bob))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await gql(DELETE, { chatId, messageId: message.id }, carol))).toEqual(['FORBIDDEN']);
    expect(await gql(DELETE, { chatId, messageId: message.id }, alice)).toEqual({ data: { deleteMessage: true } });
    expect(codes(await gql(DELETE, { chatId, messageId: message.id }, alice))).toEqual(['NOT_FOUND']);
  });
});
