import { afterEach, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import type { Client } from 'graphql-ws';
import { createClient } from 'graphql-ws';
import { systemInstruction } from '../src/services/bot-context';
import type { BotStreamEvent } from '../src/services/pubsub';
import type { TestApp, TestUser } from './support/app';
import { createTestApp, signUp } from './support/app';
import type { FakeGemini, FakeGeminiReply, FakeGeminiRequest } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import { watchSubscriptions } from './support/sockets';

/**
 * `/bot` end to end: a real server on a port, the fake Gemini speaking the real wire format,
 * `/ws` and graphql-ws clients over real sockets. Nothing sleeps to synchronise: tests await
 * frames, fake requests, pub/sub events or `bot.idle()`; the only timers are failure deadlines.
 */

const MODEL = 'gemini-test-model';
const ROOM_NAME = 'Lunch plans';
/** How long a test waits for something that should happen before failing with what it saw. */
const DEADLINE_MS = 5000;

// ---------------------------------------------------------------------------------------------
// Helpers: an awaitable recording of values, /ws and graphql-ws clients, REST and GraphQL calls.

/** Values arriving over time; `next(predicate)` takes the earliest matching value not yet taken. */
class Recorder<T> {
  readonly all: T[] = [];
  private readonly taken = new Set<number>();
  private waiters: { predicate: (value: T) => boolean; resolve: (value: T) => void }[] = [];

  push(value: T): void {
    const index = this.all.push(value) - 1;
    const waiter = this.waiters.find((w) => w.predicate(value));
    if (!waiter) return;
    this.waiters = this.waiters.filter((w) => w !== waiter);
    this.taken.add(index);
    waiter.resolve(value);
  }

  next(predicate: (value: T) => boolean = () => true, label = 'a value'): Promise<T> {
    const index = this.all.findIndex((value, i) => !this.taken.has(i) && predicate(value));
    if (index >= 0) {
      this.taken.add(index);
      return Promise.resolve(this.all[index]!);
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out waiting for ${label}; received so far: ${JSON.stringify(this.all)}`));
      }, DEADLINE_MS);
      const waiter = {
        predicate,
        resolve: (value: T) => {
          clearTimeout(timer);
          resolve(value);
        },
      };
      this.waiters.push(waiter);
    });
  }
}

/** Fails with `label` instead of hanging until the test's own timeout. */
function within<T>(promise: Promise<T>, label: string): Promise<T> {
  let timer: Timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${label}`)), DEADLINE_MS))),
  ]);
}

type Frame = Record<string, any>;
const isBot = (chatId: number) => (f: Frame) => f.type === 'bot_stream' && f.chat_id === chatId;
const isDelta = (chatId: number) => (f: Frame) => isBot(chatId)(f) && f.is_complete === false;
const isCompletion = (chatId: number) => (f: Frame) => isBot(chatId)(f) && f.is_complete === true;

/** A `/ws` client that records every frame it receives. */
class ChatWs {
  readonly frames = new Recorder<Frame>();
  private readonly closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (event) => this.frames.push(JSON.parse(String(event.data)));
    this.closed = new Promise((resolve) => ws.addEventListener('close', () => resolve()));
  }

  static async open(server: Server<unknown>, token: string): Promise<ChatWs> {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=${encodeURIComponent(token)}`);
    await within(
      new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error('/ws connection failed'));
      }),
      '/ws to open',
    );
    return new ChatWs(ws);
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  /**
   * Joins and waits until the join is done: frames after a join are handled after it, so the error
   * answering a probe on a chat that does not exist comes once the socket is in the room.
   */
  async join(chatId: number): Promise<void> {
    this.send({ type: 'join', chat_id: chatId });
    this.send({ type: 'typing', chat_id: 2_147_483_647 });
    const error = await this.frames.next((f) => f.type === 'error', 'the join probe');
    expect(error.error).toBe('Chat not found');
  }

  /** The next error frame, e.g. the answer to a refused message or stop. */
  error(): Promise<Frame> {
    return this.frames.next((f) => f.type === 'error', 'an error frame');
  }

  completion(chatId: number): Promise<Frame> {
    return this.frames.next(isCompletion(chatId), `a bot_stream completion in chat ${chatId}`);
  }

  /** Waits until the deltas received for one answer add up to `text`. */
  async receivedText(chatId: number, text: string): Promise<void> {
    const received = new Map<number, string>();
    for (;;) {
      const delta = await this.frames.next(isDelta(chatId), `deltas adding up to "${text}"`);
      const sofar = (received.get(delta.message_id) ?? '') + delta.chunk;
      if (sofar === text) return;
      received.set(delta.message_id, sofar);
    }
  }

  botFrames(chatId: number): Frame[] {
    return this.frames.all.filter(isBot(chatId));
  }

  async close(): Promise<void> {
    this.ws.close();
    await within(this.closed, '/ws to close');
  }
}

const BOT_STREAM = /* GraphQL */ `
  subscription BotStream($chatId: ID!) {
    botStream(chatId: $chatId) {
      chatId
      messageId
      chunk
      isComplete
      fullResponse
      error
      stopped
    }
  }
`;

interface GqlBotEvent {
  chatId: string;
  messageId: string;
  chunk: string;
  isComplete: boolean;
  fullResponse: string | null;
  error: string | null;
  stopped: boolean;
}

/** Resolves once the app has registered (and the bus confirmed) a listener of (`topic`, `id`): graphql-ws has no ack for subscriptions. */
function subscriptionCreated(t: TestApp, topic: string, id: number): Promise<void> {
  const watcher = watchSubscriptions(t.app.services);
  return watcher.next(topic, id).finally(() => watcher.restore());
}

/** Every `chat:bot` event of a chat as the service publishes it, for ordering checks. */
function botEvents(t: TestApp, chatId: number, onEvent: (event: BotStreamEvent) => void = () => {}) {
  const events = new Recorder<BotStreamEvent>();
  const iterator = t.app.services.pubsub.subscribe('chat:bot', chatId)[Symbol.asyncIterator]();
  void (async () => {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      onEvent(next.value);
      events.push(next.value);
    }
  })();
  cleanups.push(async () => void (await iterator.return?.()));
  return events;
}

/** Resolves with the first `n` requests the fake received, once it has. */
async function requestsArrived(fake: FakeGemini, n: number): Promise<FakeGeminiRequest[]> {
  const arrived = async () => {
    while (fake.requests.length < n) await fake.nextRequest();
    return fake.requests.slice(0, n);
  };
  return within(arrived(), `${n} Gemini request(s)`);
}

const textOf = (content: any): string => (content?.parts ?? []).map((part: { text?: string }) => part.text ?? '').join('');
const userTurn = (text: string) => ({ role: 'user', parts: [{ text }] });
const modelTurn = (text: string) => ({ role: 'model', parts: [{ text }] });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface SetupOptions {
  env?: Record<string, string>;
  /** false: GEMINI_API_KEY is not set at all. */
  key?: boolean;
}

/**
 * A fresh fake Gemini and app on a real port, with alice (owner), bob and carol in a group chat
 * and dave in none.
 */
async function setup({ env = {}, key = true }: SetupOptions = {}) {
  const fake = await startFakeGemini();
  const t = await createTestApp({
    ...(key ? { GEMINI_API_KEY: fake.apiKey } : {}),
    GEMINI_BASE_URL: fake.url,
    GEMINI_MODEL: MODEL,
    ...env,
  });
  const server = t.listen();
  const sockets: ChatWs[] = [];
  const clients: Client[] = [];
  cleanups.push(async () => {
    for (const socket of sockets) socket.ws.close();
    for (const client of clients) await client.dispose();
    await fake.stop(); // ends any hanging reply, so running answers settle
    await t.app.services.bot.idle();
    await server.stop(true);
    await t.cleanup();
  });

  const [alice, bob, carol, dave] = [await signUp(t, 'alice'), await signUp(t, 'bob'), await signUp(t, 'carol'), await signUp(t, 'dave')];

  async function rest(path: string, user: TestUser, init: RequestInit & { json?: unknown } = {}) {
    return t.request(path, { ...init, token: user.token });
  }

  async function createChat(owner: TestUser, members: TestUser[], name = ROOM_NAME): Promise<number> {
    const created = await rest('/api/chats', owner, { method: 'POST', json: { name, is_group: true } });
    expect(created.status).toBe(200);
    const { id } = (await created.json()) as { id: number };
    for (const member of members) {
      const invited = await rest(`/api/chats/${id}/invite`, owner, { method: 'POST', json: { username: member.username } });
      expect(invited.status).toBe(200);
    }
    return id;
  }

  const chatId = await createChat(alice, [bob, carol]);

  return {
    t,
    fake,
    server,
    alice,
    bob,
    carol,
    dave,
    chatId,
    createChat,
    /** Sends a message over REST; the response is returned unchecked. */
    post: (user: TestUser, content: string, chat = chatId) => rest(`/api/chats/${chat}/messages`, user, { method: 'POST', json: { content } }),
    /** Sends a message over REST and expects it stored. */
    async say(user: TestUser, content: string, chat = chatId) {
      const response = await rest(`/api/chats/${chat}/messages`, user, { method: 'POST', json: { content } });
      expect(response.status).toBe(200);
      return (await response.json()) as Frame;
    },
    async history(user: TestUser = alice, chat = chatId): Promise<Frame[]> {
      const response = await rest(`/api/chats/${chat}/messages`, user);
      expect(response.status).toBe(200);
      return (await response.json()) as Frame[];
    },
    async gql(user: TestUser, query: string, variables: Record<string, unknown> = {}) {
      const response = await rest('/graphql', user, { method: 'POST', json: { query, variables }, headers: { accept: 'application/json' } });
      return (await response.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
    },
    async ws(user: TestUser, join: number | null = chatId): Promise<ChatWs> {
      const socket = await ChatWs.open(server, user.token);
      sockets.push(socket);
      if (join !== null) await socket.join(join);
      return socket;
    },
    graphqlWs(user: TestUser): Client {
      const client = createClient({
        url: `ws://127.0.0.1:${server.port}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${user.token}` },
        retryAttempts: 0,
      });
      clients.push(client);
      return client;
    },
    /** Subscribes `user` to `botStream` over graphql-ws and resolves once the subscription is live. */
    async botStream(user: TestUser, chat = chatId) {
      const client = this.graphqlWs(user);
      const events = new Recorder<GqlBotEvent>();
      const errors: unknown[] = [];
      const live = subscriptionCreated(t, 'chat:bot', chat);
      client.subscribe<{ botStream: GqlBotEvent }>(
        { query: BOT_STREAM, variables: { chatId: String(chat) } },
        {
          next: (result) => (result.data ? events.push(result.data.botStream) : errors.push(result.errors)),
          error: (error) => errors.push(error),
          complete: () => {},
        },
      );
      await live.catch((error: Error) => {
        throw new Error(`${error.message}; subscription errors: ${JSON.stringify(errors)}`);
      });
      return {
        client,
        events,
        errors,
        completion: () => events.next((e) => e.isComplete, 'a botStream completion'),
      };
    },
  };
}

type Setup = Awaited<ReturnType<typeof setup>>;

const GQL_SEND = /* GraphQL */ `
  mutation Send($chatId: ID!, $content: String!) {
    sendMessage(chatId: $chatId, content: $content) {
      id
      chatId
      content
      isBot
      status
      username
    }
  }
`;
const GQL_STOP = /* GraphQL */ `
  mutation Stop($chatId: ID!) {
    stopBot(chatId: $chatId)
  }
`;
const GQL_MESSAGES = /* GraphQL */ `
  query Messages($id: ID!) {
    chat(id: $id) {
      messages(last: 100) {
        edges {
          node {
            id
            content
            isBot
            status
            username
            user {
              username
            }
          }
        }
      }
    }
  }
`;

async function gqlMessages(s: Setup, chat = s.chatId) {
  const result = await s.gql(s.alice, GQL_MESSAGES, { id: String(chat) });
  expect(result.errors).toBeUndefined();
  return result.data.chat.messages.edges.map((edge: { node: unknown }) => edge.node) as Frame[];
}

/**
 * Checks one member's view of a whole answer, as both generations of clients read it: the seed's
 * deltas then exactly one completion under one message id, and the later nested `message` whose
 * content is the whole text so far.
 */
function expectStreamed(frames: Frame[], chatId: number, full: string, extra: Frame = {}) {
  const completions = frames.filter((f) => f.is_complete);
  expect(completions).toHaveLength(1);
  const completion = completions[0]!;
  expect(frames.at(-1)).toBe(completion);
  const deltas = frames.slice(0, -1);
  const nested = (content: string) => ({
    id: completion.message_id,
    chat_id: chatId,
    user_id: null,
    username: 'gemini-ai',
    content,
    is_bot: true,
    created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
    edited_at: null,
    reactions: [],
    attachments: [],
  });
  let textSoFar = '';
  for (const delta of deltas) {
    expect(Object.keys(delta).sort()).toEqual(['chat_id', 'chunk', 'is_complete', 'message', 'message_id', 'type']);
    expect(delta).toMatchObject({ type: 'bot_stream', chat_id: chatId, message_id: completion.message_id, is_complete: false });
    expect(delta.chunk).not.toBe('');
    textSoFar += delta.chunk as string;
    expect(delta.message).toEqual(nested(textSoFar));
  }
  expect(textSoFar).toBe(full);
  expect(completion).toEqual({
    type: 'bot_stream',
    chat_id: chatId,
    message_id: completion.message_id,
    chunk: '',
    is_complete: true,
    full_response: full,
    ...extra,
    message: nested(full),
  });
  expect(Number.isInteger(completion.message_id)).toBe(true);
  return completion.message_id as number;
}

// ---------------------------------------------------------------------------------------------

describe('the /bot trigger', () => {
  test('from /ws: stored and delivered as the asker’s message, then answered in the room', async () => {
    const s = await setup();
    const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
    a.send({ type: 'message', chat_id: s.chatId, content: '/bot what is up?' });

    const answer = 'Echo: alice: /bot what is up?';
    for (const member of [a, b]) {
      const message = await member.frames.next((f) => f.type === 'message', 'the ask');
      expect(message).toMatchObject({ type: 'message', chat_id: s.chatId, username: 'alice', content: '/bot what is up?', is_bot: false });
      await member.completion(s.chatId);
      expect(member.frames.all.indexOf(message)).toBeLessThan(member.frames.all.findIndex(isBot(s.chatId)));
      expectStreamed(member.botFrames(s.chatId), s.chatId, answer);
    }
    await s.t.app.services.bot.idle();

    const history = await s.history(s.bob);
    expect(history).toMatchObject([
      { content: '/bot what is up?', user_id: s.alice.id, username: 'alice', is_bot: false },
      { content: answer, user_id: null, username: 'gemini-ai', is_bot: true, chat_id: s.chatId },
    ]);
    expect(history[0]!.id).toBe(a.frames.all.find((f) => f.type === 'message')!.message_id);
    expect(history[1]!.id).toBe(a.botFrames(s.chatId)[0]!.message_id);
    expect(s.fake.requests).toHaveLength(1);
  });

  test('from REST: the response is the stored ask; the room gets it, then the answer', async () => {
    const s = await setup();
    const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
    const response = await s.post(s.bob, '/bot   where shall we eat?  ');
    expect(response.status).toBe(200);
    const ask = (await response.json()) as Frame;
    expect(ask).toMatchObject({ chat_id: s.chatId, user_id: s.bob.id, username: 'bob', content: '/bot   where shall we eat?  ', is_bot: false });

    for (const member of [a, b]) {
      const message = await member.frames.next((f) => f.type === 'message', 'the ask');
      expect(message).toMatchObject({ message_id: ask.id, username: 'bob', is_bot: false });
      await member.completion(s.chatId);
      expectStreamed(member.botFrames(s.chatId), s.chatId, 'Echo: bob: /bot   where shall we eat?  ');
    }
    await s.t.app.services.bot.idle();
    expect((await s.history()).map((m) => [m.username, m.is_bot])).toEqual([
      ['bob', false],
      ['gemini-ai', true],
    ]);
  });

  test('from GraphQL sendMessage: the result is the stored ask; the room gets it, then the answer', async () => {
    const s = await setup();
    const a = await s.ws(s.alice);
    const stream = await s.botStream(s.bob);
    const result = await s.gql(s.carol, GQL_SEND, { chatId: String(s.chatId), content: '/bot pizza or sushi?' });
    expect(result.errors).toBeUndefined();
    expect(result.data.sendMessage).toMatchObject({
      chatId: String(s.chatId),
      content: '/bot pizza or sushi?',
      isBot: false,
      status: 'complete',
      username: 'carol',
    });

    const message = await a.frames.next((f) => f.type === 'message', 'the ask');
    expect(message).toMatchObject({ message_id: Number(result.data.sendMessage.id), username: 'carol', content: '/bot pizza or sushi?' });
    const completion = await stream.completion();
    expect(completion.fullResponse).toBe('Echo: carol: /bot pizza or sushi?');
    await a.completion(s.chatId);
    await s.t.app.services.bot.idle();
    expect((await gqlMessages(s)).map((m) => [m.username, m.isBot, m.content])).toEqual([
      ['carol', false, '/bot pizza or sushi?'],
      ['gemini-ai', true, 'Echo: carol: /bot pizza or sushi?'],
    ]);
  });

  test('a bare /bot (or only spaces) is refused on every transport: nothing stored, Gemini not called', async () => {
    const s = await setup();
    const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
    const expected = 'Ask the bot something: /bot <question>';
    for (const content of ['/bot', '/bot   ', '/bot \n\t ']) {
      const response = await s.post(s.alice, content);
      expect(response.status).toBe(422);
      expect(await response.json()).toEqual({ detail: expected });

      const result = await s.gql(s.alice, GQL_SEND, { chatId: String(s.chatId), content });
      expect(result.data).toBeNull();
      expect(result.errors).toHaveLength(1);
      expect(result.errors![0]).toMatchObject({ message: expected, extensions: { code: 'BAD_USER_INPUT' } });

      a.send({ type: 'message', chat_id: s.chatId, content });
      expect((await a.error()).error).toBe(expected);
    }
    await s.t.app.services.bot.idle();
    // A member's probe is answered after everything sent before it reached the room.
    await b.join(s.chatId);
    expect(await s.history()).toEqual([]);
    expect(s.fake.requests).toHaveLength(0);
    for (const member of [a, b]) expect(member.frames.all.filter((f) => f.type === 'message' || f.type === 'bot_stream')).toEqual([]);
  });

  test('/botany and a /bot later in the text are ordinary messages', async () => {
    const s = await setup();
    const b = await s.ws(s.bob);
    await s.say(s.alice, '/botany is the study of plants');
    await s.say(s.alice, 'ask the /bot later');
    const result = await s.gql(s.alice, GQL_SEND, { chatId: String(s.chatId), content: '/bots' });
    expect(result.errors).toBeUndefined();
    await s.t.app.services.bot.idle();
    await b.join(s.chatId);
    expect((await s.history()).map((m) => [m.content, m.is_bot])).toEqual([
      ['/botany is the study of plants', false],
      ['ask the /bot later', false],
      ['/bots', false],
    ]);
    expect(s.fake.requests).toHaveLength(0);
    expect(b.frames.all.filter((f) => f.type === 'message')).toHaveLength(3);
    expect(b.frames.all.filter((f) => f.type === 'bot_stream')).toEqual([]);
  });
});

describe('the Gemini call', () => {
  test('uses GEMINI_MODEL in the path and the key in the x-goog-api-key header', async () => {
    const s = await setup();
    const request = s.fake.nextRequest();
    await s.say(s.alice, '/bot hello');
    const req = await within(request, 'the Gemini request');
    expect(req.model).toBe(MODEL);
    expect(req.apiKey).toBe(s.fake.apiKey);
    expect(req.body.contents).toEqual([userTurn('alice: /bot hello')]);
    await s.t.app.services.bot.idle();
    expect(s.fake.requests).toHaveLength(1);
  });
});

describe('the context Gemini receives', () => {
  test('newest messages within BOT_CONTEXT_MESSAGES, oldest first, answers as model turns, same-role turns merged', async () => {
    const s = await setup({ env: { BOT_CONTEXT_MESSAGES: '5' } });
    await s.say(s.alice, 'an old message that falls out of the window');
    s.fake.reply({ kind: 'text', chunks: ['Not ', 'much.'] });
    await s.say(s.bob, '/bot what is up?');
    await s.t.app.services.bot.idle();
    await s.say(s.alice, 'hello');
    await s.say(s.carol, 'how are you');
    await s.say(s.bob, '/bot summarise please');
    await s.t.app.services.bot.idle();

    const [first, second] = s.fake.requests;
    expect(first!.body.contents).toEqual([userTurn('alice: an old message that falls out of the window\nbob: /bot what is up?')]);
    expect(second!.body.contents).toEqual([
      userTurn('bob: /bot what is up?'),
      modelTurn('Not much.'),
      userTurn('alice: hello\ncarol: how are you\nbob: /bot summarise please'),
    ]);
    const instruction = textOf(second!.body.systemInstruction);
    expect(instruction).toBe(systemInstruction(ROOM_NAME, 'bob'));
    expect(instruction).toContain('group chat');
    expect(instruction).toContain('bob is asking you now');
  });

  test('BOT_CONTEXT_CHARS bounds the window, which still starts with a user turn; the ask is there once', async () => {
    // turn texts: "bob: /bot q1" (12), "A1" (2), "carol: x" (8), "bob: /bot q2" (12): 22 chars reach back to A1 only.
    const s = await setup({ env: { BOT_CONTEXT_CHARS: '22' } });
    s.fake.reply({ kind: 'text', chunks: ['A1'] });
    await s.say(s.bob, '/bot q1');
    await s.t.app.services.bot.idle();
    await s.say(s.carol, 'x');
    await s.say(s.bob, '/bot q2');
    await s.say(s.alice, `/bot ${'long question '.repeat(5)}`);
    await s.t.app.services.bot.idle();
    expect(s.fake.requests[1]!.body.contents).toEqual([userTurn('carol: x\nbob: /bot q2')]);
    // An ask longer than the whole budget is still sent, alone.
    expect(s.fake.requests[2]!.body.contents).toEqual([userTurn(`alice: /bot ${'long question '.repeat(5)}`)]);
    expect(textOf(s.fake.requests[2]!.body.systemInstruction)).toContain('alice is asking you now');
  });

  test('stopped answers are context, failed ones are not', async () => {
    const s = await setup();
    const a = await s.ws(s.alice);
    s.fake.reply({ kind: 'hang-after', chunks: ['Cut short'] });
    await s.say(s.alice, '/bot one');
    await a.receivedText(s.chatId, 'Cut short');
    a.send({ type: 'stop', chat_id: s.chatId });
    await a.completion(s.chatId);
    s.fake.reply({ kind: 'http-error', status: 500, message: 'Internal error encountered.' });
    await s.say(s.bob, '/bot two');
    await a.completion(s.chatId);
    s.fake.reply({ kind: 'fail-mid-stream', chunks: ['Lost text'] });
    const dropped = s.fake.nextRequest();
    await s.say(s.carol, '/bot three');
    await a.receivedText(s.chatId, 'Lost text');
    (await dropped).drop();
    await a.completion(s.chatId);
    await s.say(s.alice, '/bot four');
    await s.t.app.services.bot.idle();
    expect(s.fake.requests.at(-1)!.body.contents).toEqual([
      userTurn('alice: /bot one'),
      modelTurn('Cut short'),
      userTurn('bob: /bot two\ncarol: /bot three\nalice: /bot four'),
    ]);
  });

  test('queued asks: the second answer’s context has the first answer right after the first ask', async () => {
    // One call slot, held by another room, so all three messages are stored before the first answer starts.
    const s = await setup({ env: { BOT_MAX_CONCURRENT_CALLS: '1' } });
    const other = await s.createChat(s.alice, [], 'Other room');
    const a = await s.ws(s.alice, other);
    s.fake.reply({ kind: 'hang-after', chunks: ['Holding the slot'] });
    await s.say(s.alice, '/bot hold', other);
    await a.receivedText(other, 'Holding the slot');

    const first = await s.say(s.alice, '/bot first?');
    const between = await s.say(s.carol, 'meanwhile');
    const second = await s.say(s.bob, '/bot second?');
    s.fake.reply({ kind: 'text', chunks: ['Answer ', 'one.'] });
    s.fake.reply({ kind: 'text', chunks: ['Answer two.'] });
    a.send({ type: 'stop', chat_id: other });
    await s.t.app.services.bot.idle();

    const [, one, two] = s.fake.requests;
    expect(one!.body.contents).toEqual([userTurn('alice: /bot first?')]);
    expect(two!.body.contents).toEqual([userTurn('alice: /bot first?'), modelTurn('Answer one.'), userTurn('carol: meanwhile\nbob: /bot second?')]);
    expect(textOf(two!.body.systemInstruction)).toContain('bob is asking you now');
    // Stored in id order: the answers came after all three messages.
    const history = await s.history();
    expect(history.map((m) => m.id)).toEqual([first.id, between.id, second.id, expect.any(Number), expect.any(Number)]);
    expect(history.map((m) => m.content)).toEqual(['/bot first?', 'meanwhile', '/bot second?', 'Answer one.', 'Answer two.']);
  });
});

describe('streaming to everyone', () => {
  test('every /ws member and graphql-ws subscriber gets the deltas, then one completion, under one message id', async () => {
    const s = await setup();
    const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
    const gql = await s.botStream(s.carol);
    s.fake.reply({ kind: 'text', chunks: ['Hel', 'lo, ', 'wor', 'ld!'] });
    a.send({ type: 'message', chat_id: s.chatId, content: '/bot greet us' });

    const ids = [];
    for (const member of [a, b]) {
      await member.completion(s.chatId);
      ids.push(expectStreamed(member.botFrames(s.chatId), s.chatId, 'Hello, world!'));
    }
    await gql.completion();
    const events = gql.events.all;
    expect(events.at(-1)).toEqual({
      chatId: String(s.chatId),
      messageId: String(ids[0]),
      chunk: '',
      isComplete: true,
      fullResponse: 'Hello, world!',
      error: null,
      stopped: false,
    });
    for (const event of events.slice(0, -1)) {
      expect(event).toMatchObject({ chatId: String(s.chatId), messageId: String(ids[0]), isComplete: false, fullResponse: null, error: null, stopped: false });
    }
    expect(
      events
        .slice(0, -1)
        .map((e) => e.chunk)
        .join(''),
    ).toBe('Hello, world!');
    // Every listener saw the same deltas.
    expect(a.botFrames(s.chatId).map((f) => f.chunk)).toEqual(events.map((e) => e.chunk));
    expect(b.botFrames(s.chatId).map((f) => f.chunk)).toEqual(events.map((e) => e.chunk));
    expect(ids[1]).toBe(ids[0]);

    await s.t.app.services.bot.idle();
    const history = await s.history();
    expect(history.at(-1)).toMatchObject({ id: ids[0], content: 'Hello, world!', is_bot: true });
    expect(gql.errors).toEqual([]);
  });

  test('a member joining mid-answer gets the text so far first, then the rest, without duplication', async () => {
    const s = await setup();
    const a = await s.ws(s.alice);
    const chunks = ['First part. ', 'Second part. ', 'Third part. ', 'Fourth part.'];
    const full = chunks.join('');
    // Held after the first chunk until bob and carol are in.
    s.fake.reply({ kind: 'text', chunks, holdAt: 1 });
    const request = s.fake.nextRequest();
    await s.say(s.alice, '/bot tell a long story');
    await a.frames.next(isDelta(s.chatId), 'the first delta');

    // /ws: the room already exists (alice is in it); graphql-ws: the service's own snapshot.
    const b = await s.ws(s.bob);
    const gql = await s.botStream(s.carol);
    (await request).release();
    const bobCompletion = await b.completion(s.chatId);
    const carolCompletion = await gql.completion();

    const bobFrames = b.botFrames(s.chatId);
    expect(bobFrames[0]!.chunk).toBe(chunks[0]!);
    expect(bobFrames).toHaveLength(chunks.length + 1); // the text so far, each live delta, the completion
    expectStreamed(bobFrames, s.chatId, full);
    expect(bobCompletion.message_id).toBe(a.botFrames(s.chatId)[0]!.message_id);

    const carolEvents = gql.events.all;
    expect(carolEvents[0]!.chunk).toBe(chunks[0]!);
    expect(carolEvents).toHaveLength(chunks.length + 1);
    expect(
      carolEvents
        .slice(0, -1)
        .map((e) => e.chunk)
        .join(''),
    ).toBe(full);
    expect(carolCompletion).toMatchObject({ messageId: String(bobCompletion.message_id), fullResponse: full });
  });

  test('joining mid-answer a room nobody else is listening to: the text so far, then the rest', async () => {
    const s = await setup();
    const events = botEvents(s.t, s.chatId);
    const chunks = ['Alpha ', 'beta ', 'gamma ', 'delta'];
    s.fake.reply({ kind: 'text', chunks, holdAt: 1 });
    const request = s.fake.nextRequest();
    await s.say(s.alice, '/bot count');
    await events.next((e) => !e.isComplete, 'the first delta');

    const b = await s.ws(s.bob);
    (await request).release();
    await b.completion(s.chatId);
    const frames = b.botFrames(s.chatId);
    expect(frames[0]!.chunk).toBe('Alpha ');
    expect(frames).toHaveLength(chunks.length + 1);
    expectStreamed(frames, s.chatId, chunks.join(''));
  });
});

describe('nothing is lost', () => {
  test('the answer is stored whole although every listener left mid-stream; history has it after the ask', async () => {
    const s = await setup();
    const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
    const gql = await s.botStream(s.carol);
    const chunks = ['Still ', 'being ', 'written ', 'when ', 'everyone left.'];
    // Held after the first chunk until everyone has left.
    s.fake.reply({ kind: 'text', chunks, holdAt: 1 });
    const request = s.fake.nextRequest();
    await s.say(s.alice, 'before');
    a.send({ type: 'message', chat_id: s.chatId, content: '/bot keep going' });
    await a.frames.next(isDelta(s.chatId), 'the first delta');
    await gql.events.next(() => true, 'the first graphql-ws event');
    await a.close();
    await b.close();
    await gql.client.dispose();
    const req = await request;
    req.release();
    await s.t.app.services.bot.idle();

    await req.closed;
    expect(req.aborted).toBe(false);
    const history = await s.history(s.bob);
    expect(history.map(({ content, is_bot, user_id, username }) => ({ content, is_bot, user_id, username }))).toEqual([
      { content: 'before', is_bot: false, user_id: s.alice.id, username: 'alice' },
      { content: '/bot keep going', is_bot: false, user_id: s.alice.id, username: 'alice' },
      { content: chunks.join(''), is_bot: true, user_id: null, username: 'gemini-ai' },
    ]);
    expect(history[2]!.id).toBe(a.botFrames(s.chatId)[0]!.message_id);
    expect(await gqlMessages(s)).toEqual([
      { id: String(history[0]!.id), content: 'before', isBot: false, status: 'complete', username: 'alice', user: { username: 'alice' } },
      { id: String(history[1]!.id), content: '/bot keep going', isBot: false, status: 'complete', username: 'alice', user: { username: 'alice' } },
      { id: String(history[2]!.id), content: chunks.join(''), isBot: true, status: 'complete', username: 'gemini-ai', user: null },
    ]);
  });
});

describe('failures', () => {
  const unreadable = 'Gemini could not be reached or sent an unreadable answer';
  const cases: { name: string; reply: FakeGeminiReply; error: string; partial: string; aborted?: boolean }[] = [
    {
      name: 'an HTTP error',
      reply: { kind: 'http-error', status: 503, message: 'The model is overloaded. Please try again later.' },
      error: 'Gemini answered with an error (HTTP 503): The model is overloaded. Please try again later.',
      partial: '',
    },
    {
      name: 'a connection dropped mid-stream',
      reply: { kind: 'fail-mid-stream', chunks: ['Half an ', 'answer'] },
      error: unreadable,
      partial: 'Half an answer',
    },
    { name: 'no answer within GEMINI_TIMEOUT_MS', reply: { kind: 'hang' }, error: 'Gemini did not answer within 0.3s', partial: '', aborted: true },
    {
      name: 'silence between chunks longer than GEMINI_TIMEOUT_MS',
      reply: { kind: 'hang-after', chunks: ['Started ', 'then '] },
      error: 'Gemini did not answer within 0.3s',
      partial: 'Started then ',
      aborted: true,
    },
    { name: 'a safety block', reply: { kind: 'safety-block' }, error: 'Gemini declined to answer (SAFETY)', partial: '' },
    { name: 'an unreadable stream', reply: { kind: 'garbage' }, error: unreadable, partial: '' },
  ];

  for (const failure of cases) {
    test(`${failure.name}: the stream ends with a readable error, nothing is stored, the room keeps working`, async () => {
      // Only the timeout cases shorten GEMINI_TIMEOUT_MS (a setting, not a sleep): the others need no deadline.
      const s = await setup({ env: failure.aborted ? { GEMINI_TIMEOUT_MS: '300' } : {} });
      const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
      s.fake.reply(failure.reply);
      const request = s.fake.nextRequest();
      a.send({ type: 'message', chat_id: s.chatId, content: '/bot tell me' });
      if (failure.reply.kind === 'fail-mid-stream') {
        // The connection drops once both members have the text, which the fake would otherwise drop with it.
        for (const member of [a, b]) await member.receivedText(s.chatId, failure.partial);
        (await request).drop();
      }

      for (const member of [a, b]) {
        await member.completion(s.chatId);
        expectStreamed(member.botFrames(s.chatId), s.chatId, failure.partial, { error: failure.error });
      }
      const error = a.botFrames(s.chatId).at(-1)!.error as string;
      expect(error).not.toMatch(/[{}[\]]|undefined|object Object|Error:/);
      const req = await request;
      await req.closed;
      expect(req.aborted).toBe(failure.aborted ?? false);
      await s.t.app.services.bot.idle();

      const history = await s.history();
      expect(history.map((m) => [m.content, m.is_bot])).toEqual([['/bot tell me', false]]);
      expect(history.some((m) => m.content.includes(error))).toBe(false);
      expect((await gqlMessages(s)).map((m) => m.content)).toEqual(['/bot tell me']);

      // The room keeps working, and the failed answer is not part of the next context.
      s.fake.reply({ kind: 'text', chunks: ['Recovered.'] });
      await s.say(s.bob, '/bot again?');
      for (const member of [a, b]) {
        await member.completion(s.chatId);
        expect(member.botFrames(s.chatId).at(-1)).toMatchObject({ is_complete: true, full_response: 'Recovered.' });
        expect(member.botFrames(s.chatId).at(-1)!.error).toBeUndefined();
      }
      await s.t.app.services.bot.idle();
      expect(s.fake.requests).toHaveLength(2);
      expect(s.fake.requests[1]!.body.contents).toEqual([userTurn('alice: /bot tell me\nbob: /bot again?')]);
      expect((await s.history()).map((m) => [m.content, m.is_bot])).toEqual([
        ['/bot tell me', false],
        ['/bot again?', false],
        ['Recovered.', true],
      ]);
    });
  }

  test('without GEMINI_API_KEY every ask ends with a configuration error and Gemini is never called', async () => {
    const s = await setup({ key: false });
    const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
    const gql = await s.botStream(s.carol);
    const expected = 'Gemini is not configured: set GEMINI_API_KEY';
    await s.say(s.alice, '/bot anyone there?');
    for (const member of [a, b]) {
      await member.completion(s.chatId);
      expectStreamed(member.botFrames(s.chatId), s.chatId, '', { error: expected });
    }
    expect(await gql.completion()).toMatchObject({ isComplete: true, fullResponse: '', error: expected, stopped: false });
    // The queue is not stuck: the next ask gets its own (failed) answer too.
    await s.say(s.bob, '/bot still nobody?');
    await a.completion(s.chatId);
    await s.t.app.services.bot.idle();
    expect(
      a
        .botFrames(s.chatId)
        .filter((f) => f.is_complete)
        .map((f) => f.error),
    ).toEqual([expected, expected]);
    expect(s.fake.requests).toHaveLength(0);
    expect((await s.history()).map((m) => m.content)).toEqual(['/bot anyone there?', '/bot still nobody?']);
  });
});

describe('order and fairness', () => {
  test('two asks in one room are answered one at a time, in order, each exactly once', async () => {
    const s = await setup();
    // When each completion is published, how many requests had the fake seen?
    const seenAtCompletion: number[] = [];
    const events = botEvents(s.t, s.chatId, (event) => event.isComplete && seenAtCompletion.push(s.fake.requests.length));
    // The first answer is held after its first chunk until both asks are stored.
    s.fake.reply({ kind: 'text', chunks: ['One, ', 'two, ', 'three.'], holdAt: 1 });
    s.fake.reply({ kind: 'text', chunks: ['Second ', 'answer.'] });
    const first = await s.say(s.alice, '/bot first');
    const second = await s.say(s.bob, '/bot second');
    const [req1] = await requestsArrived(s.fake, 1);
    const secondArrival = within(s.fake.nextRequest(), 'the second Gemini request').then((req) => ({
      req,
      stillRunning: s.t.app.services.bot.progress(s.chatId),
    }));
    req1!.release();
    const { req: req2, stillRunning } = await secondArrival;
    // The first answer was over (stored, published) before the second request was made: what runs
    // now is the second answer, with no text yet.
    expect(stillRunning).toMatchObject({ text: '' });
    expect(seenAtCompletion).toEqual([1]);
    await s.t.app.services.bot.idle();
    expect(seenAtCompletion).toEqual([1, 2]);

    expect(textOf(req1!.body.contents.at(-1))).toBe('alice: /bot first');
    expect(req2.body.contents).toEqual([userTurn('alice: /bot first'), modelTurn('One, two, three.'), userTurn('bob: /bot second')]);
    expect(s.fake.requests).toHaveLength(2);
    const completions = events.all.filter((e) => e.isComplete);
    expect(completions.map((e) => e.fullResponse)).toEqual(['One, two, three.', 'Second answer.']);
    expect(completions[0]!.messageId).toBeLessThan(completions[1]!.messageId);
    // Each answer is stored once, after its ask (whether the second ask was stored before the first
    // answer started depends on timing, so only those orders are checked).
    const ids = (await s.history()).map((m) => m.id);
    expect(ids).toHaveLength(4);
    expect(new Set(ids)).toEqual(new Set([first.id, second.id, completions[0]!.messageId, completions[1]!.messageId]));
    expect(ids.indexOf(first.id)).toBeLessThan(ids.indexOf(completions[0]!.messageId));
    expect(ids.indexOf(second.id)).toBeLessThan(ids.indexOf(completions[1]!.messageId));
    expect(ids.indexOf(completions[0]!.messageId)).toBeLessThan(ids.indexOf(completions[1]!.messageId));
  });

  test('two rooms are answered in parallel', async () => {
    const s = await setup();
    const other = await s.createChat(s.bob, [s.alice], 'Other room');
    s.fake.setDefault({ kind: 'hang-after', chunks: ['Thinking…'] });
    // Stopped answers keep their text only once they have some: wait for each room's first delta.
    const firstDeltas = [s.chatId, other].map((chat) => s.t.app.services.pubsub.subscribe('chat:bot', chat)[Symbol.asyncIterator]().next());
    await s.say(s.alice, '/bot room one?');
    await s.say(s.bob, '/bot room two?', other);
    // Both requests arrive while both answers are still running.
    const [r1, r2] = await requestsArrived(s.fake, 2);
    await within(Promise.all(firstDeltas), 'the first delta of both answers');
    expect(s.t.app.services.bot.progress(s.chatId)).not.toBeNull();
    expect(s.t.app.services.bot.progress(other)).not.toBeNull();
    expect([textOf(r1!.body.contents.at(-1)), textOf(r2!.body.contents.at(-1))].sort()).toEqual(['alice: /bot room one?', 'bob: /bot room two?']);

    for (const chat of [s.chatId, other]) {
      const result = await s.gql(s.alice, GQL_STOP, { chatId: String(chat) });
      expect(result).toEqual({ data: { stopBot: true } });
    }
    await s.t.app.services.bot.idle();
    expect((await s.history(s.alice, s.chatId)).at(-1)).toMatchObject({ is_bot: true });
    expect((await s.history(s.alice, other)).at(-1)).toMatchObject({ is_bot: true });
  });

  test('BOT_MAX_CONCURRENT_CALLS=1 serialises calls across rooms', async () => {
    const s = await setup({ env: { BOT_MAX_CONCURRENT_CALLS: '1' } });
    const other = await s.createChat(s.bob, [s.alice], 'Other room');
    s.fake.reply({ kind: 'text', chunks: ['Slow ', 'answer ', 'here.'], holdAt: 1 });
    await s.say(s.alice, '/bot slow one');
    const [first] = await requestsArrived(s.fake, 1);
    await s.say(s.bob, '/bot waiting one', other);
    const secondArrival = within(s.fake.nextRequest(), 'the second Gemini request').then((req) => ({
      req,
      firstRunning: s.t.app.services.bot.progress(s.chatId),
    }));
    first!.release();
    const second = await secondArrival;
    expect(second.firstRunning).toBeNull();
    expect(textOf(second.req.body.contents.at(-1))).toBe('bob: /bot waiting one');
    expect((await s.history(s.alice, s.chatId)).at(-1)).toMatchObject({ content: 'Slow answer here.', is_bot: true });
    await s.t.app.services.bot.idle();
    expect((await s.history(s.bob, other)).at(-1)).toMatchObject({ content: 'Echo: bob: /bot waiting one', is_bot: true });
  });

  test('the cap holds when a call slot frees up just as another room asks', async () => {
    const s = await setup({ env: { BOT_MAX_CONCURRENT_CALLS: '1' } });
    const { bot, pubsub, db } = s.t.app.services;
    const [roomB, roomC] = [await s.createChat(s.alice, [], 'Room B'), await s.createChat(s.alice, [], 'Room C')];
    const rooms = [s.chatId, roomB, roomC];
    // How many answers are running each time a Gemini request arrives: with one slot, only its own.
    const runningAtRequest: number[] = [];
    s.fake.setDefault(() => {
      runningAtRequest.push(rooms.filter((room) => bot.progress(room)).length);
      // Room A's answer (the first) holds the slot until room B's answer waits for it.
      return { kind: 'text', chunks: ['x ', 'y ', 'z'], holdAt: s.fake.requests.length === 1 ? 1 : undefined };
    });
    // Room B's answer has found its ask: its next step is waiting for the slot.
    const findFirst = db.message.findFirst;
    const roomBLookedUp = new Promise<void>((resolve) => {
      db.message.findFirst = ((args: Parameters<typeof findFirst>[0]) =>
        findFirst.call(db.message, args).then((row) => {
          if (args?.where?.chatId === roomB) resolve();
          return row;
        })) as typeof findFirst;
    });
    cleanups.push(async () => void (db.message.findFirst = findFirst));
    // Room C's ask reaches the service in the very microtask window in which room A's answer
    // releases its slot to room B, which is already waiting for it.
    await db.message.create({ data: { chatId: roomC, userId: s.alice.id, content: '/bot C', askPending: true } });
    const publish = pubsub.publish;
    pubsub.publish = (...args: Parameters<typeof publish>) => {
      publish.apply(pubsub, args);
      const [topic, chat, event] = args as [string, number, BotStreamEvent];
      if (topic === 'chat:bot' && chat === s.chatId && event.isComplete) {
        pubsub.publish = publish;
        queueMicrotask(() => void bot.answer(roomC));
      }
    };
    cleanups.push(async () => void (pubsub.publish = publish));

    await s.say(s.alice, '/bot A');
    const [roomA] = await requestsArrived(s.fake, 1);
    await s.say(s.alice, '/bot B', roomB);
    await within(roomBLookedUp, "room B's answer finding its ask");
    roomA!.release();
    await requestsArrived(s.fake, 3);
    await bot.idle();
    expect(runningAtRequest).toEqual([1, 1, 1]);
    expect(s.fake.requests.map((req) => textOf(req.body.contents.at(-1)))).toEqual(['alice: /bot A', 'alice: /bot B', 'alice: /bot C']);
  });

  test('BOT_RATE_LIMIT=2: the third ask in a minute is refused with 429, nothing stored', async () => {
    const s = await setup({ env: { BOT_RATE_LIMIT: '2' } });
    const a = await s.ws(s.alice);
    expect((await s.post(s.alice, '/bot')).status).toBe(422); // a refused ask does not count
    await s.say(s.alice, '/bot one');
    await s.say(s.alice, '/bot two');

    const refused = await s.post(s.alice, '/bot three');
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ detail: 'Too many /bot requests: at most 2 a minute' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const overGraphql = await s.gql(s.alice, GQL_SEND, { chatId: String(s.chatId), content: '/bot four' });
    expect(overGraphql.errors?.[0]).toMatchObject({ message: 'Too many /bot requests: at most 2 a minute', extensions: { code: 'RATE_LIMITED' } });
    a.send({ type: 'message', chat_id: s.chatId, content: '/bot five' });
    expect((await a.error()).error).toBe('Too many /bot requests: at most 2 a minute');

    await s.say(s.alice, 'ordinary messages are not limited');
    await s.say(s.bob, '/bot others still can');
    await s.t.app.services.bot.idle();
    expect(s.fake.requests).toHaveLength(3);
    const contents = (await s.history()).filter((m) => !m.is_bot).map((m) => m.content);
    expect(contents).toEqual(['/bot one', '/bot two', 'ordinary messages are not limited', '/bot others still can']);
  });
});

describe('stop', () => {
  async function runningAnswer(s: Setup, ask: (a: ChatWs) => Promise<unknown> | void) {
    const [a, b] = [await s.ws(s.alice), await s.ws(s.bob)];
    s.fake.reply({ kind: 'hang-after', chunks: ['Partial ', 'answer'] });
    const request = s.fake.nextRequest();
    await ask(a);
    const req = await within(request, 'the Gemini request');
    await a.receivedText(s.chatId, 'Partial answer');
    await b.receivedText(s.chatId, 'Partial answer');
    return { a, b, req };
  }

  test('any participant stops the answer over /ws: the call is aborted, the text so far is kept', async () => {
    const s = await setup();
    const { a, b, req } = await runningAnswer(s, (a) => a.send({ type: 'message', chat_id: s.chatId, content: '/bot go on and on' }));
    b.send({ type: 'stop', chat_id: s.chatId }); // bob did not ask
    await req.closed;
    expect(req.aborted).toBe(true);
    for (const member of [a, b]) {
      await member.completion(s.chatId);
      expectStreamed(member.botFrames(s.chatId), s.chatId, 'Partial answer', { stopped: true });
    }
    await s.t.app.services.bot.idle();
    expect((await s.history()).at(-1)).toMatchObject({ content: 'Partial answer', is_bot: true, user_id: null });
    expect((await gqlMessages(s)).at(-1)).toMatchObject({ content: 'Partial answer', isBot: true, status: 'stopped' });
    expect(b.frames.all.filter((f) => f.type === 'error')).toHaveLength(1); // only the join probe's
  });

  test('any participant stops the answer with GraphQL stopBot; graphql-ws subscribers see it stopped', async () => {
    const s = await setup();
    const gql = await s.botStream(s.bob);
    const { a, req } = await runningAnswer(s, () => s.say(s.alice, '/bot go on'));
    const result = await s.gql(s.carol, GQL_STOP, { chatId: String(s.chatId) });
    expect(result).toEqual({ data: { stopBot: true } });
    await req.closed;
    expect(req.aborted).toBe(true);
    await a.completion(s.chatId);
    expectStreamed(a.botFrames(s.chatId), s.chatId, 'Partial answer', { stopped: true });
    expect(await gql.completion()).toMatchObject({ chunk: '', isComplete: true, fullResponse: 'Partial answer', error: null, stopped: true });
    await s.t.app.services.bot.idle();
    const stored = (await gqlMessages(s)).at(-1)!;
    expect(stored).toMatchObject({ content: 'Partial answer', isBot: true, status: 'stopped', username: 'gemini-ai' });
    expect(stored.id).toBe(String(a.botFrames(s.chatId)[0]!.message_id));

    // The room keeps working after a stop.
    s.fake.reply({ kind: 'text', chunks: ['Fine.'] });
    await s.say(s.bob, '/bot and now?');
    await s.t.app.services.bot.idle();
    expect((await s.history()).at(-1)).toMatchObject({ content: 'Fine.', is_bot: true });
  });

  test('stopping when nothing is running is an error; a non-member cannot stop', async () => {
    const s = await setup();
    const a = await s.ws(s.alice);
    const expected = 'No bot answer is running in this chat';
    a.send({ type: 'stop', chat_id: s.chatId });
    expect((await a.error()).error).toBe(expected);
    const viaGraphql = await s.gql(s.bob, GQL_STOP, { chatId: String(s.chatId) });
    expect(viaGraphql.errors?.[0]).toMatchObject({ message: expected, extensions: { code: 'BAD_USER_INPUT' } });

    // Nor after an answer has finished.
    await s.say(s.alice, '/bot quick one');
    await a.completion(s.chatId);
    a.send({ type: 'stop', chat_id: s.chatId });
    expect((await a.error()).error).toBe(expected);

    // Someone outside the room cannot stop its answer.
    s.fake.reply({ kind: 'hang-after', chunks: ['Busy'] });
    await s.say(s.alice, '/bot long one');
    await a.receivedText(s.chatId, 'Busy');
    const outsider = await s.gql(s.dave, GQL_STOP, { chatId: String(s.chatId) });
    expect(outsider.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(s.t.app.services.bot.progress(s.chatId)).toMatchObject({ text: 'Busy' });
    a.send({ type: 'stop', chat_id: s.chatId });
    expect((await a.completion(s.chatId)).stopped).toBe(true);
  });
});
