import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { type ChatClient, type Frame, MISSING_CHAT_ID, socketKit, type SocketKit } from './support/sockets';

/**
 * No cross-room leak, path by path. alice owns room A with bob; mallory is a registered user with a
 * room of her own (M) and no place in A. Every way of reading or acting on A — REST, GraphQL over
 * HTTP, `/ws` frames, graphql-ws subscriptions — answers her 403 / FORBIDDEN / "Not authorized" and
 * nothing else, and a chat that does not exist answers 404 / NOT_FOUND / "Chat not found" instead:
 * existence is checked first, then membership, as the original did.
 *
 * "Nothing arrived" is proven with events only: after A has been busy (a message, typing, a
 * presence notice and a bot stream, each seen by bob), a message in M must reach mallory, and by
 * then nothing of A may have.
 */

let t: TestApp;
let server: Server<unknown>;
let kit: SocketKit;
let alice: TestUser;
let bob: TestUser;
let mallory: TestUser;
let roomA: number;
let roomM: number;
/** A message of room A, for what acts on one (reactions). */
let messageInA: number;

const SECRET = `secret-${crypto.randomUUID()}`;
const ROOM_A_NAME = `room-a-${crypto.randomUUID().slice(0, 8)}`;
/** Strings that exist only in room A: none may appear in anything mallory receives. */
let secrets: string[];

let seq = 0;
const unique = (label: string) => `${label}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  t = await createTestApp();
  server = t.listen();
  kit = socketKit(server, t.app.services);
  [alice, bob, mallory] = await Promise.all([signUp(t), signUp(t), signUp(t)]);
  roomA = (await ok(await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: ROOM_A_NAME, is_group: true } }))).id;
  await ok(await t.request(`/api/chats/${roomA}/invite`, { method: 'POST', token: alice.token, json: { username: bob.username } }));
  messageInA = (await restSend(alice, roomA, `${SECRET} from alice`)).id;
  await restSend(bob, roomA, `${SECRET} from bob`);
  roomM = (await ok(await t.request('/api/chats', { method: 'POST', token: mallory.token, json: { name: 'mallory-room', is_group: false } }))).id;
  await restSend(mallory, roomM, 'mallory talks to herself');
  secrets = [SECRET, ROOM_A_NAME, `${alice.username}@example.com`, `${bob.username}@example.com`];
});
afterEach(() => kit.closeAll());
afterAll(async () => {
  await kit.dispose();
  await server.stop(true);
  await t.cleanup();
});

// ---------------------------------------------------------------------------------------------
// Helpers

async function ok<T = any>(response: Response): Promise<T> {
  const text = await response.text();
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function restSend(user: TestUser, chatId: number, content: string): Promise<{ id: number }> {
  return ok(await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } }));
}

function expectNoSecrets(text: string): void {
  for (const secret of secrets) expect(text).not.toContain(secret);
}

interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function gql(user: TestUser, query: string, variables: Record<string, unknown>): Promise<{ status: number; text: string; body: GraphQLBody }> {
  const response = await t.request('/graphql', { method: 'POST', token: user.token, json: { query, variables }, headers: { accept: 'application/json' } });
  const text = await response.text();
  return { status: response.status, text, body: JSON.parse(text) as GraphQLBody };
}

/** What room A holds, as its owner sees it: refused requests must leave it exactly so. */
async function snapshotOfA() {
  const [chat, participants, messages] = await Promise.all([
    ok(await t.request(`/api/chats/${roomA}`, { token: alice.token })),
    ok<{ username: string }[]>(await t.request(`/api/chats/${roomA}/participants`, { token: alice.token })),
    ok<{ id: number; content: string }[]>(await t.request(`/api/chats/${roomA}/messages?limit=200`, { token: alice.token })),
  ]);
  return { chat, participants: participants.map((user) => user.username), messages: messages.map((message) => [message.id, message.content]) };
}

/** A `/ws` socket of `user`, open and past its open handler, that has joined `rooms`. */
async function connect(user: TestUser, rooms: number[] = []): Promise<ChatClient> {
  const socket = kit.chat(user.token);
  await socket.opened;
  for (const room of rooms) socket.send({ type: 'join', chat_id: room });
  await socket.sync();
  return socket;
}

/**
 * Makes room A busy on every topic a member can hear — a stored message, typing, presence, a
 * reaction and a bot stream — and waits until bob, a member, has heard each. Anything bridged to
 * mallory by now would be in flight too.
 */
async function busyRoomA(): Promise<void> {
  const a = await connect(alice, [roomA]);
  const b = await connect(bob, [roomA]);
  // bob's join is announced to alice.
  await a.next((frame) => frame.type === 'user_joined' && frame.chat_id === roomA && frame.username === bob.username);
  const content = `${SECRET} ${unique('busy')}`;
  await restSend(alice, roomA, content);
  await b.next((frame) => frame.type === 'message' && frame.content === content);
  a.send({ type: 'typing', chat_id: roomA });
  await b.next((frame) => frame.type === 'typing' && frame.chat_id === roomA);
  // Added and taken back, so room A's reactions are as they were.
  const reactions = `/api/chats/${roomA}/messages/${messageInA}/reactions`;
  await ok(await t.request(reactions, { method: 'POST', token: alice.token, json: { emoji: '🤫' } }));
  await ok(await t.request(`${reactions}/${encodeURIComponent('🤫')}`, { method: 'DELETE', token: alice.token }));
  await b.next((frame) => frame.type === 'reaction' && frame.chat_id === roomA && frame.action === 'removed');
  // A bot answer's stream, published as the bot service does: a delta, then its completion.
  const messageId = 900_000 + ++seq;
  t.app.services.pubsub.publish('chat:bot', roomA, { chatId: roomA, messageId, chunk: SECRET, isComplete: false, createdAt: new Date() });
  t.app.services.pubsub.publish('chat:bot', roomA, { chatId: roomA, messageId, chunk: '', isComplete: true, fullResponse: SECRET, createdAt: new Date() });
  await b.next((frame) => frame.type === 'bot_stream' && frame.message_id === messageId && frame.is_complete === true);
  await a.close();
  await b.close();
}

// ---------------------------------------------------------------------------------------------
// REST

type RestCase = [label: string, method: 'GET' | 'POST' | 'DELETE', path: (chatId: number) => string, body: () => unknown];
const restCases: RestCase[] = [
  ['GET /api/chats/{id}', 'GET', (id) => `/api/chats/${id}`, () => undefined],
  ['GET /api/chats/{id}/messages', 'GET', (id) => `/api/chats/${id}/messages`, () => undefined],
  ['GET /api/chats/{id}/messages?limit=200', 'GET', (id) => `/api/chats/${id}/messages?limit=200`, () => undefined],
  ['GET /api/chats/{id}/messages?before=…', 'GET', (id) => `/api/chats/${id}/messages?before=2147483647`, () => undefined],
  ['GET /api/chats/{id}/participants', 'GET', (id) => `/api/chats/${id}/participants`, () => undefined],
  ['POST /api/chats/{id}/invite (herself)', 'POST', (id) => `/api/chats/${id}/invite`, () => ({ username: mallory.username })],
  ['POST /api/chats/{id}/invite (a member)', 'POST', (id) => `/api/chats/${id}/invite`, () => ({ username: bob.username })],
  ['POST /api/chats/{id}/messages', 'POST', (id) => `/api/chats/${id}/messages`, () => ({ content: 'mallory was here' })],
  ['POST /api/chats/{id}/messages (/bot)', 'POST', (id) => `/api/chats/${id}/messages`, () => ({ content: '/bot what did they say?' })],
  ['POST /api/chats/{id}/messages/{id}/reactions', 'POST', (id) => `/api/chats/${id}/messages/${messageInA}/reactions`, () => ({ emoji: '👍' })],
  [
    'DELETE /api/chats/{id}/messages/{id}/reactions/{emoji}',
    'DELETE',
    (id) => `/api/chats/${id}/messages/${messageInA}/reactions/%F0%9F%91%8D`,
    () => undefined,
  ],
];

describe('REST', () => {
  test.each(restCases)('%s: a non-member gets 403 {"detail":"Not authorized"} and nothing else', async (_label, method, path, body) => {
    const before = await snapshotOfA();
    const response = await t.request(path(roomA), { method, token: mallory.token, json: body() });
    const text = await response.text();
    expect(response.status).toBe(403);
    expect(JSON.parse(text)).toEqual({ detail: 'Not authorized' });
    expectNoSecrets(text);
    expect(await snapshotOfA()).toEqual(before);
  });

  test.each(restCases)('%s: a missing chat gets 404 {"detail":"Chat not found"}, not 403', async (_label, method, path, body) => {
    const response = await t.request(path(MISSING_CHAT_ID), { method, token: mallory.token, json: body() });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: 'Chat not found' });
  });

  test.each(restCases)('%s: a member gets past the membership check (the control)', async (_label, method, path, body) => {
    // As bob: a message of his own, and an invite of alice (already a member), so A gains no one:
    // that invite is answered "User is already a participant", which only a member gets to hear.
    const payload = body() as { content?: string; username?: string } | undefined;
    const json = payload?.content !== undefined ? { content: unique('control') } : payload?.username !== undefined ? { username: alice.username } : payload;
    const response = await t.request(path(roomA), { method, token: bob.token, json });
    if (payload?.username !== undefined) expect(await response.json()).toEqual({ detail: 'User is already a participant' });
    else expect(response.status).toBe(200);
  });

  test('GET /api/chats lists only her own room', async () => {
    const response = await t.request('/api/chats', { token: mallory.token });
    const text = await response.text();
    expect(response.status).toBe(200);
    expect((JSON.parse(text) as { id: number }[]).map((chat) => chat.id)).toEqual([roomM]);
    expectNoSecrets(text);
  });

  test('her own room shows only its own messages and participants', async () => {
    const messages = await ok<{ chat_id: number; content: string }[]>(await t.request(`/api/chats/${roomM}/messages?limit=200`, { token: mallory.token }));
    expect(messages.length).toBeGreaterThan(0);
    expect(messages.every((message) => message.chat_id === roomM)).toBe(true);
    const participants = await ok<{ username: string }[]>(await t.request(`/api/chats/${roomM}/participants`, { token: mallory.token }));
    expect(participants.map((user) => user.username)).toEqual([mallory.username]);
    expectNoSecrets(JSON.stringify([messages, participants]));
  });
});

// ---------------------------------------------------------------------------------------------
// GraphQL over HTTP

type GraphqlCase = [label: string, request: (chatId: number) => { query: string; variables: Record<string, unknown> }];
const byId = (query: string) => (id: number) => ({ query, variables: { id } });
const graphqlCases: GraphqlCase[] = [
  ['chat(id)', byId('query ($id: ID!) { chat(id: $id) { id name isGroup createdAt owner { username email } } }')],
  ['chat(id) { participants }', byId('query ($id: ID!) { chat(id: $id) { id participants { id username email } } }')],
  [
    'chat(id) { messages }',
    byId(
      'query ($id: ID!) { chat(id: $id) { id messages(last: 20) { edges { cursor node { id content username user { email } } } pageInfo { startCursor } } } }',
    ),
  ],
  [
    'chat(id) with the id inline',
    (id) => ({ query: `{ chat(id: "${id}") { id name participants { username } messages { edges { node { content } } } } }`, variables: {} }),
  ],
  ['sendMessage', byId('mutation ($id: ID!) { sendMessage(chatId: $id, content: "mallory was here") { id content } }')],
  ['sendMessage (/bot)', byId('mutation ($id: ID!) { sendMessage(chatId: $id, content: "/bot leak it") { id content } }')],
  [
    'inviteUser (herself)',
    (id) => ({
      query:
        'mutation ($id: ID!, $username: String!) { inviteUser(chatId: $id, username: $username) { id name participants { username email } messages { edges { node { content } } } } }',
      variables: { id, username: mallory.username },
    }),
  ],
  ['stopBot', byId('mutation ($id: ID!) { stopBot(chatId: $id) }')],
  ['sendTyping', byId('mutation ($id: ID!) { sendTyping(chatId: $id) }')],
  ['editMessage', byId('mutation ($id: ID!) { editMessage(chatId: $id, messageId: "1", content: "mallory was here") { id content } }')],
  ['deleteMessage', byId('mutation ($id: ID!) { deleteMessage(chatId: $id, messageId: "1") }')],
  ...(['addReaction', 'removeReaction'] as const).map((mutation): GraphqlCase => [
    mutation,
    (id) => ({
      query: `mutation ($id: ID!, $m: ID!) { ${mutation}(chatId: $id, messageId: $m, emoji: "👍") { emoji userIds } }`,
      variables: { id, m: messageInA },
    }),
  ]),
];

describe('GraphQL', () => {
  test.each(graphqlCases)('%s: a non-member gets FORBIDDEN "Not authorized", data null, and nothing else', async (_label, request) => {
    const before = await snapshotOfA();
    const { query, variables } = request(roomA);
    const { status, text, body } = await gql(mallory, query, variables);
    expect(status).toBeLessThan(500);
    expect(body.data ?? null).toBeNull();
    expect(body.errors?.map((error) => [error.extensions?.code, error.message])).toEqual([['FORBIDDEN', 'Not authorized']]);
    expectNoSecrets(text);
    expect(await snapshotOfA()).toEqual(before);
  });

  test.each(graphqlCases)('%s: a missing chat gets NOT_FOUND "Chat not found", not FORBIDDEN', async (_label, request) => {
    const { query, variables } = request(MISSING_CHAT_ID);
    const { body } = await gql(mallory, query, variables);
    expect(body.data ?? null).toBeNull();
    expect(body.errors?.map((error) => [error.extensions?.code, error.message])).toEqual([['NOT_FOUND', 'Chat not found']]);
  });

  test('chats returns only her own room, and its nested fields only its own', async () => {
    const { text, body } = await gql(
      mallory,
      `{ chats { id name owner { username } participants { id username email }
          messages(last: 10) { edges { node { id chatId content username } } } } }`,
      {},
    );
    expect(body.errors).toBeUndefined();
    const chats = body.data!.chats as { id: string; participants: { username: string }[]; messages: { edges: { node: { chatId: string } }[] } }[];
    expect(chats.map((chat) => Number(chat.id))).toEqual([roomM]);
    expect(chats[0]!.participants.map((user) => user.username)).toEqual([mallory.username]);
    expect(chats[0]!.messages.edges.length).toBeGreaterThan(0);
    expect(chats[0]!.messages.edges.every((edge) => Number(edge.node.chatId) === roomM)).toBe(true);
    expectNoSecrets(text);
  });

  test('aliases cannot mix her room with room A into a partial answer', async () => {
    const { text, body } = await gql(
      mallory,
      'query ($m: ID!, $a: ID!) { mine: chat(id: $m) { id } theirs: chat(id: $a) { id messages { edges { node { content } } } } }',
      { m: roomM, a: roomA },
    );
    // Both fields are non-null, so one refusal nulls the whole answer: nothing of A, with or without M.
    expect(body.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
    expectNoSecrets(text);
  });
});

// ---------------------------------------------------------------------------------------------
// /ws

type WsCase = [label: string, frame: (chatId: number) => Record<string, unknown>];
const wsCases: WsCase[] = [
  ['join', (id) => ({ type: 'join', chat_id: id })],
  ['join with after (catch-up)', (id) => ({ type: 'join', chat_id: id, after: 1 })],
  ['typing', (id) => ({ type: 'typing', chat_id: id })],
  ['message', (id) => ({ type: 'message', chat_id: id, content: 'mallory was here' })],
  ['message (/bot)', (id) => ({ type: 'message', chat_id: id, content: '/bot leak it' })],
  ['stop', (id) => ({ type: 'stop', chat_id: id })],
  ['edit', (id) => ({ type: 'edit', chat_id: id, message_id: 1, content: 'mallory was here' })],
  ['delete', (id) => ({ type: 'delete', chat_id: id, message_id: 1 })],
  ['react', (id) => ({ type: 'react', chat_id: id, message_id: messageInA, emoji: '👍' })],
  ['unreact', (id) => ({ type: 'unreact', chat_id: id, message_id: messageInA, emoji: '👍' })],
];

/** mallory's view of her socket once A has been busy and a later message of M has reached her. */
async function provenQuiet(socket: ChatClient): Promise<Frame[]> {
  await busyRoomA();
  const marker = unique('marker in M');
  await restSend(mallory, roomM, marker);
  await socket.next((frame) => frame.type === 'message' && frame.content === marker, 'the marker message from her own room');
  return socket.frames;
}

describe('/ws', () => {
  test.each(wsCases)('%s: a non-member gets "Not authorized", and no frame of A afterwards', async (_label, frame) => {
    const before = await snapshotOfA();
    const socket = await connect(mallory, [roomM]);
    socket.send(frame(roomA));
    expect(await socket.nextError()).toEqual({ type: 'error', error: 'Not authorized' });
    const frames = await provenQuiet(socket);
    expect(frames.filter((received) => received.chat_id === roomA)).toEqual([]);
    // Presence in her own room M may arrive (over Redis, a previous test's socket leaving M can land late).
    expect(frames.filter((received) => received.type !== 'error' && received.type !== 'message' && received.chat_id !== roomM)).toEqual([]);
    expect(frames.filter((received) => received.type === 'error').map((received) => received.error)).toEqual(['Chat not found', 'Not authorized']);
    expectNoSecrets(JSON.stringify(frames));
    expect(socket.isClosed()).toBe(false);
    // Room A is as it was, but for busyRoomA's own message.
    const after = await snapshotOfA();
    expect(after.participants).toEqual(before.participants);
    expect(after.messages.slice(0, before.messages.length)).toEqual(before.messages);
    expect(after.messages.slice(before.messages.length).every(([, content]) => String(content).startsWith(SECRET))).toBe(true);
  });

  test.each(wsCases)('%s: a missing chat gets "Chat not found", not "Not authorized"', async (_label, frame) => {
    const socket = await connect(mallory);
    socket.send(frame(MISSING_CHAT_ID - 1));
    expect(await socket.nextError()).toEqual({ type: 'error', error: 'Chat not found' });
  });

  test('every refusal on one socket, then nothing of A while her own room still works', async () => {
    const socket = await connect(mallory, [roomM]);
    for (const [, frame] of wsCases) socket.send(frame(roomA));
    for (const _ of wsCases) expect(await socket.nextError()).toEqual({ type: 'error', error: 'Not authorized' });
    const frames = await provenQuiet(socket);
    expect(frames.filter((received) => received.chat_id === roomA)).toEqual([]);
    expectNoSecrets(JSON.stringify(frames));
  });

  test('after: 0 reveals nothing either', async () => {
    // The brief for this matrix expected "Not authorized"; today 0 is refused as a cursor (ids start
    // at 1) before membership is asked. Either answer is a refusal with nothing of A in it.
    const socket = await connect(mallory, [roomM]);
    socket.send({ type: 'join', chat_id: roomA, after: 0 });
    const error = await socket.nextError();
    expect(['Not authorized', 'after: Input should be greater than or equal to 1']).toContain(error.error as string);
    const frames = await provenQuiet(socket);
    expect(frames.filter((received) => received.chat_id === roomA)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// graphql-ws

type SubscriptionCase = [label: string, query: string, variables: (chatId: number) => Record<string, unknown>, field: string];
const subscriptionCases: SubscriptionCase[] = [
  ['messageAdded', 'subscription ($id: ID!) { messageAdded(chatId: $id) { id content username } }', (id) => ({ id }), 'messageAdded'],
  ['messageAdded(after: "1")', 'subscription ($id: ID!) { messageAdded(chatId: $id, after: "1") { id content username } }', (id) => ({ id }), 'messageAdded'],
  ['typing', 'subscription ($id: ID!) { typing(chatId: $id) { chatId username } }', (id) => ({ id }), 'typing'],
  ['botStream', 'subscription ($id: ID!) { botStream(chatId: $id) { chatId messageId chunk isComplete fullResponse } }', (id) => ({ id }), 'botStream'],
  [
    'messageChanged(after: "1")',
    'subscription ($id: ID!) { messageChanged(chatId: $id, after: "1") { ... on MessageUpdatedEvent { message { content } } ... on MessageDeletedEvent { messageId } } }',
    (id) => ({ id }),
    'messageChanged',
  ],
  [
    'reactionChanged',
    'subscription ($id: ID!) { reactionChanged(chatId: $id) { chatId messageId emoji username reactions { userIds } } }',
    (id) => ({ id }),
    'reactionChanged',
  ],
];

describe('graphql-ws', () => {
  test.each(subscriptionCases)('%s: a non-member gets FORBIDDEN and no event', async (_label, query, variables, field) => {
    const client = kit.graphql(mallory.token);
    const refused = client.subscribe(query, variables(roomA), { field });
    await refused.done;
    expect(refused.errors.map((error) => [error.extensions?.code, error.message])).toEqual([['FORBIDDEN', 'Not authorized']]);
    // On the same connection, her own room still streams; by the time its marker arrives A has been busy.
    const own = client.subscribe<{ content: string; chatId: string }>(
      'subscription ($id: ID!) { messageAdded(chatId: $id) { content chatId } }',
      { id: roomM },
      { field: 'messageAdded', ready: ['chat:message', roomM] },
    );
    await own.ready;
    await busyRoomA();
    const marker = unique('marker in M');
    await restSend(mallory, roomM, marker);
    await own.next((event) => event.content === marker, 'the marker from her own room');
    expect(refused.events).toEqual([]);
    expect(own.events.every((event) => Number(event.chatId) === roomM)).toBe(true);
    expectNoSecrets(JSON.stringify([refused.results, refused.errors, own.results]));
  });

  test.each(subscriptionCases)('%s: a missing chat gets NOT_FOUND, not FORBIDDEN', async (_label, query, variables, field) => {
    const subscription = kit.graphql(mallory.token).subscribe(query, variables(MISSING_CHAT_ID), { field });
    await subscription.done;
    expect(subscription.errors.map((error) => [error.extensions?.code, error.message])).toEqual([['NOT_FOUND', 'Chat not found']]);
    expect(subscription.events).toEqual([]);
  });

  test('messageAdded(after: "0") reveals nothing either', async () => {
    // As for /ws: 0 is refused as a cursor before membership is asked, or (if 0 becomes a valid
    // cursor) refused as FORBIDDEN. Never a replay.
    const subscription = kit
      .graphql(mallory.token)
      .subscribe('subscription ($id: ID!) { messageAdded(chatId: $id, after: "0") { id content } }', { id: roomA }, { field: 'messageAdded' });
    await subscription.done;
    expect(subscription.errors).toHaveLength(1);
    expect(['FORBIDDEN', 'BAD_USER_INPUT']).toContain(subscription.errors[0]!.extensions?.code as string);
    expect(subscription.events).toEqual([]);
    expectNoSecrets(JSON.stringify(subscription.results));
  });
});
