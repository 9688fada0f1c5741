import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import { SignJWT } from 'jose';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { type ChatClient, type Frame, type GraphqlSubscription, MISSING_CHAT_ID, servedTestApp, socketKit, type SocketKit } from './support/sockets';

/**
 * The realtime protocols over real sockets: the original `/ws?token=` protocol and graphql-ws on
 * `/graphql`, against one served app. Synchronisation is by events only: a `/ws` join is confirmed
 * by `sync()` (a frame answered after the join settled), a graphql-ws subscription by watching the
 * pub/sub bus for its listener, and "nothing arrived" by a later frame the same socket must get.
 */

let t: TestApp;
let server: Server<unknown>;
let kit: SocketKit;

beforeAll(async () => {
  t = await createTestApp();
  server = t.listen();
  kit = socketKit(server, t.app.services);
});
afterEach(() => kit.closeAll());
afterAll(async () => {
  await kit.dispose();
  await server.stop(true);
  await t.cleanup();
});

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const keysOf = (value: object) => Object.keys(value).sort();
let seq = 0;
const unique = (label: string) => `${label}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

// ---------------------------------------------------------------------------------------------
// HTTP over the real port

async function http(path: string, init: { method?: string; json?: unknown; token?: string } = {}) {
  const headers = new Headers();
  if (init.json !== undefined) headers.set('content-type', 'application/json');
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  return fetch(`http://${server.hostname}:${server.port}${path}`, {
    method: init.method ?? (init.json === undefined ? 'GET' : 'POST'),
    headers,
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  });
}

async function okJson<T = any>(response: Response): Promise<T> {
  const body = await response.text();
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${body}`);
  return JSON.parse(body) as T;
}

/** A group chat owned by `owner` with `members` invited over REST. */
async function createChat(owner: TestUser, members: TestUser[] = [], name = unique('room')) {
  const chat = await okJson<{ id: number; name: string }>(await http('/api/chats', { token: owner.token, json: { name, is_group: true } }));
  for (const member of members) await invite(owner, chat.id, member);
  return chat;
}

async function invite(inviter: TestUser, chatId: number, invitee: TestUser) {
  await okJson(await http(`/api/chats/${chatId}/invite`, { token: inviter.token, json: { username: invitee.username } }));
}

async function restSend(user: TestUser, chatId: number, content: string) {
  return okJson<{ id: number; content: string }>(await http(`/api/chats/${chatId}/messages`, { token: user.token, json: { content } }));
}

async function history(user: TestUser, chatId: number) {
  return okJson<{ id: number; content: string; username: string }[]>(await http(`/api/chats/${chatId}/messages?limit=200`, { token: user.token }));
}

async function gql<T = any>(user: TestUser, query: string, variables: Record<string, unknown>) {
  const response = await http('/graphql', { token: user.token, json: { query, variables } });
  const body = (await response.json()) as { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
  if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data as T;
}

const SEND_MESSAGE = /* GraphQL */ `
  mutation Send($chatId: ID!, $content: String!) {
    sendMessage(chatId: $chatId, content: $content) {
      id
      content
    }
  }
`;
const SEND_TYPING = /* GraphQL */ `
  mutation Typing($chatId: ID!) {
    sendTyping(chatId: $chatId)
  }
`;
const MESSAGE_ADDED = /* GraphQL */ `
  subscription MessageAdded($chatId: ID!) {
    messageAdded(chatId: $chatId) {
      id
      content
      username
      isBot
      createdAt
      chatId
    }
  }
`;
const TYPING = /* GraphQL */ `
  subscription Typing($chatId: ID!) {
    typing(chatId: $chatId) {
      chatId
      username
    }
  }
`;
const BOT_STREAM = /* GraphQL */ `
  subscription Bot($chatId: ID!) {
    botStream(chatId: $chatId) {
      chatId
      messageId
      chunk
      isComplete
    }
  }
`;

interface GqlMessage {
  id: string;
  content: string;
  username: string | null;
  isBot: boolean;
  createdAt: string;
  chatId: string;
}

// ---------------------------------------------------------------------------------------------
// Frame helpers

const isMessage = (content: string) => (frame: Frame) => frame.type === 'message' && frame.content === content;
const messagesIn = (socket: ChatClient, chatId: number) => socket.frames.filter((frame) => frame.type === 'message' && frame.chat_id === chatId);
const countContent = (socket: ChatClient, content: string) => socket.frames.filter(isMessage(content)).length;

/** A `/ws` socket of `user` that is open and whose open handler has run. */
async function connect(user: TestUser): Promise<ChatClient> {
  const socket = kit.chat(user.token);
  await socket.opened;
  await socket.sync();
  return socket;
}

/** A `/ws` message frame from `socket`, awaited on `socket` itself (it must have joined). */
async function wsSend(socket: ChatClient, chatId: number, content: string) {
  socket.send({ type: 'message', chat_id: chatId, content });
  return socket.next(isMessage(content), `the echo of "${content}"`);
}

/** A graphql-ws `messageAdded` subscription that is listening when this resolves. */
async function subscribeMessages(user: TestUser, chatId: number): Promise<GraphqlSubscription<GqlMessage>> {
  const subscription = kit.graphql(user.token).subscribe<GqlMessage>(MESSAGE_ADDED, { chatId }, { field: 'messageAdded', ready: ['chat:message', chatId] });
  await subscription.ready;
  return subscription;
}

function token(secret: string, claims: { sub: string; iat: number; exp: number }) {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt(claims.iat)
    .setExpirationTime(claims.exp)
    .sign(new TextEncoder().encode(secret));
}

// ---------------------------------------------------------------------------------------------

describe('/ws authentication', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, (user: TestUser) => Promise<string | null>][] = [
    ['a missing token', async () => null],
    ['an empty token', async () => ''],
    ['a garbage token', async () => 'not-a-jwt'],
    [
      'a token signed with another key',
      (user) => token('some-other-secret-key-that-is-long-enough-!!', { sub: String(user.id), iat: now(), exp: now() + 3600 }),
    ],
    ['an expired token', (user) => token(t.config.secretKey, { sub: String(user.id), iat: now() - 7200, exp: now() - 3600 })],
    ['a token for a user that does not exist', () => token(t.config.secretKey, { sub: '987654321', iat: now(), exp: now() + 3600 })],
  ];

  for (const [label, make] of cases) {
    test(`${label}: the socket is closed with 1008 before any frame`, async () => {
      const user = await signUp(t);
      const socket = kit.chat(await make(user));
      const closed = await socket.closed;
      expect(closed.code).toBe(1008);
      expect(closed.reason).toBe('Invalid authentication credentials');
      expect(socket.frames).toEqual([]);
    });
  }

  test('a valid token opens a socket that answers frames', async () => {
    const user = await signUp(t);
    const socket = await connect(user);
    expect(socket.isClosed()).toBe(false);
    expect(socket.frames).toEqual([{ type: 'error', error: 'Chat not found' }]);
  });

  test('/ws without an upgrade is 426', async () => {
    const response = await http('/ws');
    expect(response.status).toBe(426);
  });
});

describe('/ws frames out', () => {
  test("a message goes to every socket that joined the room, the sender included, with the seed's flat keys and the later nested message", async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await createChat(alice, [bob]);
    const a = await connect(alice);
    const b = await connect(bob);
    await a.join(chat.id);
    await b.join(chat.id);

    const content = unique('hello');
    a.send({ type: 'message', chat_id: chat.id, content });
    const [own, other] = await Promise.all([a.next(isMessage(content)), b.next(isMessage(content))]);
    expect(own).toEqual(other);
    expect(keysOf(own)).toEqual(['attachments', 'chat_id', 'content', 'created_at', 'is_bot', 'message', 'message_id', 'type', 'username']);
    const [stored] = (await history(alice, chat.id)).filter((message) => message.content === content);
    expect(own).toEqual({
      type: 'message',
      chat_id: chat.id,
      message_id: stored!.id,
      username: alice.username,
      content,
      is_bot: false,
      created_at: expect.stringMatching(ISO_UTC),
      attachments: [],
      message: {
        id: stored!.id,
        chat_id: chat.id,
        user_id: alice.id,
        username: alice.username,
        content,
        is_bot: false,
        created_at: own.created_at,
        edited_at: null,
        reactions: [],
        attachments: [],
      },
    });
  });

  test('typing goes to the other sockets only, not back to the sender', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await createChat(alice, [bob]);
    const a = await connect(alice);
    const aSecond = await connect(alice);
    const b = await connect(bob);
    for (const socket of [a, aSecond, b]) await socket.join(chat.id);

    a.send({ type: 'typing', chat_id: chat.id });
    const typing = await b.next('typing');
    expect(typing).toEqual({ type: 'typing', chat_id: chat.id, username: alice.username });
    // The exclusion is per socket: the sender's other socket hears it.
    expect(await aSecond.next('typing')).toEqual(typing);
    // The sender's own later message arrives after any typing frame it could have got.
    await wsSend(a, chat.id, unique('after-typing'));
    expect(a.frames.filter((frame) => frame.type === 'typing')).toEqual([]);
  });

  test('joining tells the others (user_joined), not the joiner; leaving and disconnecting send user_left', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await createChat(alice, [bob]);
    const a = await connect(alice);
    await a.join(chat.id);

    const b = await connect(bob);
    await b.join(chat.id);
    expect(await a.next('user_joined')).toEqual({ type: 'user_joined', chat_id: chat.id, username: bob.username });
    expect(b.frames.filter((frame) => frame.type === 'user_joined')).toEqual([]);

    await b.leave(chat.id);
    expect(await a.next('user_left')).toEqual({ type: 'user_left', chat_id: chat.id, username: bob.username });
    expect(b.frames.filter((frame) => frame.type === 'user_left')).toEqual([]);

    await b.join(chat.id);
    expect(await a.next('user_joined')).toEqual({ type: 'user_joined', chat_id: chat.id, username: bob.username });
    await b.close();
    expect(await a.next('user_left')).toEqual({ type: 'user_left', chat_id: chat.id, username: bob.username });
  });

  test('joining the same room twice changes nothing: one user_joined, one copy of each message', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await createChat(alice, [bob]);
    const a = await connect(alice);
    await a.join(chat.id);
    const b = await connect(bob);
    await b.join(chat.id);
    await b.join(chat.id);
    const content = unique('once');
    await restSend(alice, chat.id, content);
    await b.next(isMessage(content));
    await a.next(isMessage(content));
    expect(a.frames.filter((frame) => frame.type === 'user_joined')).toHaveLength(1);
    expect(countContent(b, content)).toBe(1);
  });

  test("leave ends the room's typing and presence for that socket; its messages keep coming, once, to every socket of a participant", async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const room = await createChat(alice, [bob]);
    const a = await connect(alice);
    const b = await connect(bob);
    const bNeverJoined = await connect(bob);
    await a.join(room.id);
    await b.join(room.id);

    await b.leave(room.id);
    a.send({ type: 'typing', chat_id: room.id });
    const afterLeave = unique('after-leave');
    await restSend(alice, room.id, afterLeave);
    await b.next(isMessage(afterLeave));
    await bNeverJoined.next(isMessage(afterLeave));

    // Leave and join again in quick succession, as the later web client does on each re-render.
    b.send({ type: 'leave', chat_id: room.id });
    b.send({ type: 'join', chat_id: room.id });
    const churn = unique('during-churn');
    await restSend(alice, room.id, churn);
    await b.next(isMessage(churn));
    await b.sync();
    const again = unique('rejoined');
    await restSend(alice, room.id, again);
    await b.next(isMessage(again));
    for (const content of [afterLeave, churn, again]) expect(countContent(b, content)).toBe(1);
    expect(b.frames.filter((frame) => frame.type === 'typing')).toEqual([]);
  });

  test('an invite over REST is pushed to every open socket of the invitee, and only theirs', async () => {
    const alice = await signUp(t);
    const dave = await signUp(t);
    const erin = await signUp(t);
    const d1 = await connect(dave);
    const d2 = await connect(dave);
    const e = await connect(erin);

    const name = unique('Invite room');
    const chat = await createChat(alice, [], name);
    await invite(alice, chat.id, dave);
    const expected = {
      type: 'chat_invite',
      chat_id: chat.id,
      chat_name: name,
      invited_by: alice.username,
      chat: { id: chat.id, name, owner_id: alice.id, created_at: expect.stringMatching(ISO_UTC), is_group: true },
      notification: `${alice.username} added you to ${name}`,
    };
    const pushed = await d1.next('chat_invite');
    expect(keysOf(pushed)).toEqual(['chat', 'chat_id', 'chat_name', 'invited_by', 'notification', 'type']);
    expect(pushed).toEqual(expected);
    expect(await d2.next('chat_invite')).toEqual(expected);

    // erin's own later invite is her first chat_invite frame.
    await invite(alice, chat.id, erin);
    expect(await e.next('chat_invite')).toEqual({ ...expected });
    expect(e.frames.filter((frame) => frame.type === 'chat_invite')).toHaveLength(1);

    // The invitee can join at once and hears the room.
    await d1.join(chat.id);
    const content = unique('welcome');
    await restSend(alice, chat.id, content);
    await d1.next(isMessage(content));
  });

  test('an invite of a user with no open socket is not held for a socket opened later', async () => {
    const alice = await signUp(t);
    const dave = await signUp(t);
    const first = await createChat(alice);
    await invite(alice, first.id, dave);
    const d = await connect(dave);
    const second = await createChat(alice, [], unique('second'));
    await invite(alice, second.id, dave);
    const pushed = await d.next('chat_invite');
    expect(pushed.chat_id).toBe(second.id);
    expect(d.frames.filter((frame) => frame.type === 'chat_invite')).toHaveLength(1);
  });
});

describe('/ws authorization', () => {
  test('a non-participant may not join, send or type; a missing chat is "Chat not found"; nothing is stored or delivered', async () => {
    const alice = await signUp(t);
    const erin = await signUp(t);
    const room = await createChat(alice);
    const erinsRoom = await createChat(erin);
    const a = await connect(alice);
    await a.join(room.id);
    const e = await connect(erin);
    await e.join(erinsRoom.id);
    const before = (await history(alice, room.id)).length;

    const cases: [unknown, string][] = [
      [{ type: 'join', chat_id: room.id }, 'Not authorized'],
      [{ type: 'message', chat_id: room.id, content: 'intruder' }, 'Not authorized'],
      [{ type: 'typing', chat_id: room.id }, 'Not authorized'],
      [{ type: 'join', chat_id: MISSING_CHAT_ID - 1 }, 'Chat not found'],
      [{ type: 'message', chat_id: MISSING_CHAT_ID - 1, content: 'nowhere' }, 'Chat not found'],
      [{ type: 'typing', chat_id: MISSING_CHAT_ID - 1 }, 'Chat not found'],
    ];
    for (const [frame, error] of cases) {
      e.send(frame);
      expect(await e.nextError()).toEqual({ type: 'error', error });
    }

    expect((await history(alice, room.id)).length).toBe(before);
    // A later message in the room reaches alice, and erin's own room still works for erin...
    const inRoom = unique('members-only');
    await restSend(alice, room.id, inRoom);
    await a.next(isMessage(inRoom));
    const marker = unique('erin-marker');
    await restSend(erin, erinsRoom.id, marker);
    await e.next(isMessage(marker));
    // ...and neither the refused join nor the refused typing left a trace.
    expect(messagesIn(e, room.id)).toEqual([]);
    expect(a.frames.filter((frame) => frame.type !== 'message' && frame.type !== 'error')).toEqual([]);
  });
});

describe('/ws bad frames', () => {
  const long = 'x'.repeat(10_001);
  const cases: [label: string, raw: (chatId: number) => string, error: RegExp][] = [
    ['malformed JSON', () => '{"type": "message", ', /^Invalid JSON$/],
    ['an unknown type', (id) => JSON.stringify({ type: 'dance', chat_id: id }), /Unknown message type/],
    ['no type', (id) => JSON.stringify({ chat_id: id, content: 'hi' }), /Unknown message type/],
    ['a missing chat_id', () => JSON.stringify({ type: 'message', content: 'hi' }), /^chat_id: Field required$/],
    ['a non-numeric chat_id', () => JSON.stringify({ type: 'message', chat_id: 'abc', content: 'hi' }), /chat_id: Input should be a valid integer/],
    ['a chat_id of 0', () => JSON.stringify({ type: 'message', chat_id: 0, content: 'hi' }), /chat_id: Input should be greater than or equal to 1/],
    ['empty content', (id) => JSON.stringify({ type: 'message', chat_id: id, content: '' }), /content: Message content must not be empty/],
    ['whitespace content', (id) => JSON.stringify({ type: 'message', chat_id: id, content: ' \n\t ' }), /content: Message content must not be empty/],
    ['missing content', (id) => JSON.stringify({ type: 'message', chat_id: id }), /content: Field required/],
    ['content that is not a string', (id) => JSON.stringify({ type: 'message', chat_id: id, content: 42 }), /content: Input should be a valid string/],
    [
      'content over 10,000 characters',
      (id) => JSON.stringify({ type: 'message', chat_id: id, content: long }),
      /content: Message content must be at most 10000 characters/,
    ],
    [
      'a JSON array',
      (id) => JSON.stringify([{ type: 'message', chat_id: id, content: 'hi' }]),
      /^Input should be a valid dictionary or object to extract fields from$/,
    ],
    ['a JSON number', () => '42', /^Input should be a valid dictionary or object to extract fields from$/],
    ['JSON null', () => 'null', /^Input should be a valid dictionary or object to extract fields from$/],
    ['a JSON string', () => '"message"', /^Input should be a valid dictionary or object to extract fields from$/],
  ];

  test('each bad frame gets an error frame, nothing is stored, and the socket keeps working', async () => {
    const alice = await signUp(t);
    const chat = await createChat(alice);
    const socket = await connect(alice);
    await socket.join(chat.id);
    const before = (await history(alice, chat.id)).length;

    const seen: Record<string, unknown> = {};
    for (const [label, raw, error] of cases) {
      socket.send(raw(chat.id));
      const frame = await socket.nextError();
      expect(keysOf(frame)).toEqual(['error', 'type']);
      expect(typeof frame.error).toBe('string');
      expect(frame.error as string).toMatch(error);
      seen[label] = frame.error;
      // Still open, and still working.
      const content = unique(`ok-after-${label}`);
      await wsSend(socket, chat.id, content);
    }
    expect(socket.isClosed()).toBe(false);
    const stored = await history(alice, chat.id);
    expect(stored.length).toBe(before + cases.length);
    expect(stored.every((message) => message.content.startsWith('ok-after-'))).toBe(true);
    // No internal error leaked for any shape of input.
    expect(Object.values(seen)).not.toContain('Internal server error');
  });

  test('content of exactly 10,000 characters is accepted', async () => {
    const alice = await signUp(t);
    const chat = await createChat(alice);
    const socket = await connect(alice);
    await socket.join(chat.id);
    const content = `${unique('max')}-`.padEnd(10_000, 'y');
    expect(content.length).toBe(10_000);
    await wsSend(socket, chat.id, content);
  });

  test('a frame over 64 KiB closes the socket with 1009', async () => {
    const alice = await signUp(t);
    const chat = await createChat(alice);
    const socket = await connect(alice);
    await socket.join(chat.id);
    const before = (await history(alice, chat.id)).length;
    socket.send(JSON.stringify({ type: 'message', chat_id: chat.id, content: 'z'.repeat(64 * 1024) }));
    const closed = await socket.closed;
    expect(closed.code).toBe(1009);
    expect(messagesIn(socket, chat.id)).toEqual([]);
    expect((await history(alice, chat.id)).length).toBe(before);
  });
});

describe('/ws rate limit', () => {
  const limited = servedTestApp({ WS_RATE_LIMIT: '5' });

  test('a burst over the limit gets rate-limit errors, is partly refused, and the socket stays open', async () => {
    const alice = await signUp(limited.t);
    const create = await limited.t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'limited.t' } });
    const chat = (await create.json()) as { id: number };
    const socket = limited.kit.chat(alice.token);
    await socket.opened;
    await socket.join(chat.id);

    const prefix = unique('burst');
    for (let i = 0; i < 20; i++) socket.send({ type: 'message', chat_id: chat.id, content: `${prefix}-${i}` });
    // Every frame is answered: an echo of the stored message, or a rate-limit error.
    const answers: Frame[] = [];
    for (let i = 0; i < 20; i++) {
      answers.push(
        await socket.next(
          (frame) => frame.type === 'error' || (frame.type === 'message' && String(frame.content).startsWith(prefix)),
          'an answer to the burst',
        ),
      );
    }
    const errors = answers.filter((frame) => frame.type === 'error');
    const echoes = answers.filter((frame) => frame.type === 'message');
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) expect(error.error as string).toMatch(/rate limit/i);
    expect(echoes.length).toBeGreaterThan(0);
    expect(echoes.length).toBeLessThan(20);

    const historyResponse = await limited.t.request(`/api/chats/${chat.id}/messages?limit=200`, { token: alice.token });
    const stored = ((await historyResponse.json()) as { content: string }[]).filter((message) => message.content.startsWith(prefix));
    expect(stored.length).toBe(echoes.length);
    expect(socket.isClosed()).toBe(false);

    // The socket still works once the bucket refills: each try is answered, so this waits on frames, not a timer.
    const content = unique('after-burst');
    for (let tries = 0; ; tries++) {
      expect(tries).toBeLessThan(10_000);
      socket.send({ type: 'message', chat_id: chat.id, content });
      const answer = await socket.next((frame) => frame.type === 'error' || isMessage(content)(frame), 'an answer after the burst');
      if (answer.type === 'message') break;
      expect(answer.error as string).toMatch(/rate limit/i);
    }
    expect(socket.isClosed()).toBe(false);
  });
});

describe('graphql-ws', () => {
  test('a bad token in connectionParams closes the socket with 4403', async () => {
    const user = await signUp(t);
    const chat = await createChat(user);
    const now = Math.floor(Date.now() / 1000);
    const expired = await token(t.config.secretKey, { sub: String(user.id), iat: now - 7200, exp: now - 3600 });
    for (const params of [{ authorization: 'Bearer garbage' }, { authorization: `Bearer ${expired}` }, { token: 'garbage' }, {}]) {
      const client = kit.graphql(null, { connectionParams: params });
      const subscription = client.subscribe(MESSAGE_ADDED, { chatId: chat.id }, { field: 'messageAdded' });
      const closed = await client.closed;
      expect(closed.code).toBe(4403);
      const done = await subscription.done;
      expect(done.kind).toBe('error');
      expect(subscription.events).toEqual([]);
    }
  });

  test('messageAdded delivers each message with id content username isBot createdAt chatId', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await createChat(alice, [bob]);
    const subscription = await subscribeMessages(bob, chat.id);

    const content = unique('gql');
    const sent = await restSend(alice, chat.id, content);
    const event = await subscription.next((message) => message.content === content);
    expect(keysOf(event)).toEqual(['chatId', 'content', 'createdAt', 'id', 'isBot', 'username']);
    expect(event).toEqual({
      id: String(sent.id),
      content,
      username: alice.username,
      isBot: false,
      createdAt: expect.stringMatching(ISO_UTC),
      chatId: String(chat.id),
    });
    expect(subscription.errors).toEqual([]);
  });

  test('typing delivers events sent over /ws and by the sendTyping mutation', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chat = await createChat(alice, [bob]);
    const subscription = kit
      .graphql(bob.token)
      .subscribe<{ chatId: string; username: string }>(TYPING, { chatId: chat.id }, { field: 'typing', ready: ['chat:typing', chat.id] });
    await subscription.ready;

    const a = await connect(alice);
    a.send({ type: 'typing', chat_id: chat.id });
    expect(await subscription.next(() => true, 'typing from /ws')).toEqual({ chatId: String(chat.id), username: alice.username });

    expect(await gql(alice, SEND_TYPING, { chatId: chat.id })).toEqual({ sendTyping: true });
    expect(await subscription.next(() => true, 'typing from the mutation')).toEqual({ chatId: String(chat.id), username: alice.username });
    expect(subscription.events).toHaveLength(2);
  });

  test('a non-participant subscribing gets FORBIDDEN and never an event; a missing chat is NOT_FOUND', async () => {
    const alice = await signUp(t);
    const erin = await signUp(t);
    const room = await createChat(alice);
    const erinsRoom = await createChat(erin);
    const client = kit.graphql(erin.token);
    const own = client.subscribe<GqlMessage>(MESSAGE_ADDED, { chatId: erinsRoom.id }, { field: 'messageAdded', ready: ['chat:message', erinsRoom.id] });
    await own.ready;

    const refused = [
      client.subscribe(MESSAGE_ADDED, { chatId: room.id }, { field: 'messageAdded' }),
      client.subscribe(TYPING, { chatId: room.id }, { field: 'typing' }),
      client.subscribe(BOT_STREAM, { chatId: room.id }, { field: 'botStream' }),
    ];
    for (const subscription of refused) {
      await subscription.done;
      expect(subscription.errors.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
      expect(subscription.errors[0]!.message).toBe('Not authorized');
    }
    const missing = client.subscribe(MESSAGE_ADDED, { chatId: MISSING_CHAT_ID }, { field: 'messageAdded' });
    await missing.done;
    expect(missing.errors.map((error) => error.extensions?.code)).toEqual(['NOT_FOUND']);

    // Activity in the room, then a message in erin's own room: her live subscription proves the
    // connection is healthy and that nothing from the room came first.
    const secret = unique('secret');
    await restSend(alice, room.id, secret);
    await gql(alice, SEND_TYPING, { chatId: room.id });
    const marker = unique('erin');
    await restSend(erin, erinsRoom.id, marker);
    await own.next((message) => message.content === marker);
    for (const subscription of [...refused, missing]) expect(subscription.events).toEqual([]);
    expect(own.events.map((message) => message.content)).toEqual([marker]);
  });
});

describe('transport matrix', () => {
  test('REST, GraphQL and /ws senders each reach /ws joiners and graphql-ws subscribers exactly once, and no one outside the room', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const carol = await signUp(t);
    const dave = await signUp(t);
    const room = await createChat(alice, [bob, carol]);
    const elsewhere = await createChat(dave);

    // Receivers in the room, on each transport.
    const sender = await connect(alice);
    await sender.join(room.id);
    const joiner = await connect(bob);
    await joiner.join(room.id);
    const subscriber = await subscribeMessages(carol, room.id);
    // Outsiders: a /ws socket in another room, and a graphql-ws subscriber of another room.
    const outsiderSocket = await connect(dave);
    await outsiderSocket.join(elsewhere.id);
    const outsiderSubscriber = await subscribeMessages(dave, elsewhere.id);

    const senders: [string, (content: string) => Promise<unknown>][] = [
      ['rest', (content) => restSend(alice, room.id, content)],
      ['graphql', (content) => gql(alice, SEND_MESSAGE, { chatId: room.id, content })],
      ['ws', async (content) => sender.send({ type: 'message', chat_id: room.id, content })],
    ];
    const contents: string[] = [];
    for (const [label, send] of senders) {
      const content = unique(`matrix-${label}`);
      contents.push(content);
      await send(content);
      await Promise.all([
        joiner.next(isMessage(content), `${label} message on the /ws joiner`),
        sender.next(isMessage(content), `${label} message on the sender's socket`),
        subscriber.next((message) => message.content === content, `${label} message on the graphql-ws subscriber`),
      ]);
    }

    // A last message in the room: any duplicate of the ones above would have come before it.
    const barrier = unique('matrix-barrier');
    await restSend(alice, room.id, barrier);
    await Promise.all([joiner.next(isMessage(barrier)), sender.next(isMessage(barrier)), subscriber.next((message) => message.content === barrier)]);
    for (const content of contents) {
      expect(countContent(joiner, content)).toBe(1);
      expect(countContent(sender, content)).toBe(1);
      expect(subscriber.events.filter((message) => message.content === content)).toHaveLength(1);
    }
    expect(subscriber.events.every((message) => message.chatId === String(room.id))).toBe(true);

    // A message in the outsiders' room reaches both, with nothing from `room` before it.
    const outside = unique('matrix-outside');
    await restSend(dave, elsewhere.id, outside);
    await outsiderSocket.next(isMessage(outside));
    await outsiderSubscriber.next((message) => message.content === outside);
    expect(messagesIn(outsiderSocket, room.id)).toEqual([]);
    expect(outsiderSocket.frames.filter((frame) => frame.type === 'message').map((frame) => frame.content)).toEqual([outside]);
    expect(outsiderSubscriber.events.map((message) => message.content)).toEqual([outside]);
    // And the room's members never saw it.
    expect(countContent(joiner, outside) + countContent(sender, outside)).toBe(0);
    expect(subscriber.events.some((message) => message.content === outside)).toBe(false);
  });
});

describe('/ws disconnect during a join', () => {
  test('a socket that closes while its join is being checked never joins: no phantom user_joined, the room stays clean', async () => {
    const own = await createTestApp();
    // Know when the server has handled a close: wrap the handler before Bun.serve reads it.
    const serverCloses: (() => void)[] = [];
    const originalClose = own.app.websocket.close!;
    own.app.websocket.close = (ws, code, reason) => {
      const result = originalClose(ws, code, reason);
      serverCloses.shift()?.();
      return result;
    };
    const ownServer = own.listen();
    const ownKit = socketKit(ownServer, own.app.services);
    const listenersAtStart = own.app.services.pubsub.listenerCount();
    try {
      const alice = await signUp(own);
      const bob = await signUp(own);
      const room = (await (await own.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'race' } })).json()) as { id: number };
      await own.request(`/api/chats/${room.id}/invite`, { method: 'POST', token: alice.token, json: { username: bob.username } });

      // Hold bob's membership check for the room until he has disconnected.
      const chats = own.app.services.chats;
      const check = chats.requireParticipant.bind(chats);
      let entered!: () => void;
      const checking = new Promise<void>((resolve) => (entered = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      chats.requireParticipant = async (userId, chatId) => {
        const result = await check(userId, chatId);
        if (userId === bob.id && chatId === room.id) {
          entered();
          await released;
        }
        return result;
      };

      const a = ownKit.chat(alice.token);
      await a.opened;
      await a.join(room.id);
      const b = ownKit.chat(bob.token);
      await b.opened;
      b.send({ type: 'join', chat_id: room.id });
      await checking;
      const serverClosed = new Promise<void>((resolve) => serverCloses.push(resolve));
      await b.close();
      await serverClosed;
      release();

      // A message published after the join finished: a phantom user_joined would come first.
      const marker = unique('after-race');
      await own.request(`/api/chats/${room.id}/messages`, { method: 'POST', token: alice.token, json: { content: marker } });
      await a.next(isMessage(marker));
      expect(a.frames.filter((frame) => frame.type === 'user_joined' || frame.type === 'user_left')).toEqual([]);

      // The dead socket kept nothing: once alice's socket has closed too, no listener is left.
      const aClosed = new Promise<void>((resolve) => serverCloses.push(resolve));
      await a.close();
      await aClosed;
      expect(own.app.services.pubsub.listenerCount()).toBe(listenersAtStart);
    } finally {
      await ownKit.dispose();
      await ownServer.stop(true);
      await own.cleanup();
    }
  });
});
