import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { Redis } from 'ioredis';
import { BotService } from '../src/services/bot.service';
import type { BotStreamEvent, PubSub } from '../src/services/pubsub';
import { createEventBus } from '../src/services/pubsub';
import { RoomFeeds } from '../src/services/room-feed';
import type { RoomLock } from '../src/services/room-lock';
import { localRoomLock, redisRoomLock } from '../src/services/room-lock';
import type { TestApp, TestUser } from './support/app';
import { createTestApp, signUp } from './support/app';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import type { PrivateRedis } from './support/redis-server';
import { startPrivateRedis } from './support/redis-server';

/**
 * How an answer ends when something around it fails: its room lock lost to another instance, or its
 * row gone when it is stored. Bot services are built by hand over the test app's database, each
 * with an in-memory pub/sub and the lock under test, so the test sees every event they publish.
 * Everything waits on events (pub/sub events, fake Gemini requests, `idle()`).
 */

const DEADLINE_MS = 3_000;

let fake: FakeGemini;
let t: TestApp;
let alice: TestUser;
let redisServer: PrivateRedis;
const clients: Redis[] = [];
beforeAll(async () => {
  fake = await startFakeGemini();
  t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url });
  alice = await signUp(t);
  redisServer = await startPrivateRedis();
});
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await fake.stop();
  await redisServer.stop();
  await t.cleanup();
});

const idles: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(idles.splice(0).map((idle) => idle()));
});

function redisClient(): Redis {
  const client = new Redis(redisServer.url);
  clients.push(client);
  return client;
}

/** A bot service as one instance would have it, publishing to `pubsub`. */
function instance(pubsub: PubSub, lock: RoomLock): BotService {
  const { db, chats } = t.app.services;
  const { log, metrics } = t.app.services;
  const bot = new BotService(db, chats, pubsub, t.config, lock, new RoomFeeds(db, pubsub, log), log, metrics);
  idles.push(() => bot.idle());
  return bot;
}

async function newRoom(name: string): Promise<number> {
  const response = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name } });
  return ((await response.json()) as { id: number }).id;
}

const ask = (chatId: number, content: string) =>
  t.app.services.db.message.create({ data: { chatId, userId: alice.id, content, askPending: true }, select: { id: true } });

/** The room's `chat:bot` events on `pubsub`; `next` waits for the first one matching, not yet taken. */
function botEvents(pubsub: PubSub, chatId: number) {
  const seen: BotStreamEvent[] = [];
  let waiters: { match: (event: BotStreamEvent) => boolean; resolve: (event: BotStreamEvent) => void }[] = [];
  const iterator = pubsub.subscribe('chat:bot', chatId)[Symbol.asyncIterator]();
  void (async () => {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      const waiter = waiters.find((candidate) => candidate.match(next.value));
      if (waiter) {
        waiters = waiters.filter((candidate) => candidate !== waiter);
        waiter.resolve(next.value);
      } else seen.push(next.value);
    }
  })();
  idles.push(async () => void (await iterator.return?.()));
  return {
    next(match: (event: BotStreamEvent) => boolean, label: string): Promise<BotStreamEvent> {
      const index = seen.findIndex(match);
      if (index >= 0) return Promise.resolve(seen.splice(index, 1)[0]!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${label} within ${DEADLINE_MS} ms; seen: ${JSON.stringify(seen)}`)), DEADLINE_MS);
        waiters.push({ match, resolve: (event) => (clearTimeout(timer), resolve(event)) });
      });
    },
  };
}

const lastUserLine = (body: { contents: { parts: { text: string }[] }[] }) => body.contents.at(-1)!.parts[0]!.text.split('\n').at(-1);

describe('a room lock lost mid-answer', () => {
  for (const how of ['deleted', 'taken by another holder'] as const) {
    test(`its key ${how}: the answer stops and is stored failed; the next holder answers only what is still pending`, async () => {
      const chatId = await newRoom(`lock ${how}`);
      const prefix = `bot-lifecycle:${crypto.randomUUID()}:`;
      const key = `${prefix}bot-lock:${chatId}`;
      const admin = redisClient();
      // Two instances on one database and one Redis; renewals come fast, so a lost lock shows at once.
      const { pubsub } = await createEventBus(null, '', t.app.services.log, t.app.services.metrics);
      const [first, second] = [
        instance(pubsub, redisRoomLock(redisClient(), prefix, t.app.services.log, { ttlMs: 10_000, renewEveryMs: 20 })),
        instance(pubsub, redisRoomLock(redisClient(), prefix, t.app.services.log, { ttlMs: 10_000, renewEveryMs: 20 })),
      ];
      const events = botEvents(pubsub, chatId);
      const [one, two] = [await ask(chatId, '/bot one'), await ask(chatId, '/bot two')];
      const requestsBefore = fake.requests.length;

      fake.reply({ kind: 'hang-after', chunks: ['partial '] });
      const request = fake.nextRequest();
      void first.answer(chatId);
      await events.next((event) => !event.isComplete, 'the first delta');
      if (how === 'deleted') await admin.del(key);
      else await admin.set(key, 'another instance');

      const stopped = await events.next((event) => event.isComplete, 'the completion');
      expect(stopped).toMatchObject({ fullResponse: 'partial ', error: 'The answer was interrupted: another server took over the room' });
      expect(stopped.stopped).toBeUndefined();
      const req = await request;
      await req.closed;
      expect(req.aborted).toBe(true);
      await first.idle();
      // The first instance went no further: the second ask waits for whoever holds the room now.
      expect(fake.requests.length - requestsBefore).toBe(1);
      expect(await admin.get(key)).toBe(how === 'deleted' ? null : 'another instance');

      await admin.del(key); // the other holder is done
      await second.answer(chatId);
      const answered = await events.next((event) => event.isComplete, 'the second answer');
      expect(answered.error).toBeUndefined();
      expect(fake.requests.length - requestsBefore).toBe(2);
      expect(lastUserLine(fake.requests.at(-1)!.body)).toBe(`${alice.username}: /bot two`);

      const answers = await t.app.services.db.message.findMany({
        where: { chatId, isBot: true },
        orderBy: { id: 'asc' },
        select: { id: true, replyToId: true, status: true, content: true },
      });
      expect(answers.map((answer) => [answer.replyToId, answer.status])).toEqual([
        [one.id, 'failed'],
        [two.id, 'complete'],
      ]);
      expect(answers.map((answer) => answer.id)).toEqual([stopped.messageId, answered.messageId]);
      expect(await t.app.services.db.message.count({ where: { chatId, askPending: true } })).toBe(0);
    });
  }
});

describe('storing an answer fails', () => {
  test('the room still gets the completion, with an error, and the next ask is answered', async () => {
    const chatId = await newRoom('unstorable');
    const { pubsub } = await createEventBus(null, '', t.app.services.log, t.app.services.metrics);
    const bot = instance(pubsub, localRoomLock);
    const events = botEvents(pubsub, chatId);
    await ask(chatId, '/bot vanish');
    fake.reply({ kind: 'text', chunks: ['Soon ', 'gone.'], holdAt: 1 });
    const request = fake.nextRequest();
    void bot.answer(chatId);
    const delta = await events.next((event) => !event.isComplete, 'the first delta');
    // The answer's row goes while it is written: the final update finds nothing to update.
    await t.app.services.db.message.delete({ where: { id: delta.messageId } });
    (await request).release();

    const completion = await events.next((event) => event.isComplete, 'the completion');
    expect(completion).toMatchObject({ messageId: delta.messageId, fullResponse: 'Soon gone.', error: 'The answer could not be stored' });
    expect(completion.stopped).toBeUndefined();
    await bot.idle();

    await ask(chatId, '/bot still there?');
    await bot.answer(chatId);
    const next = await events.next((event) => event.isComplete, 'the next completion');
    expect(next.error).toBeUndefined();
    expect(next.fullResponse).toBe(`Echo: ${alice.username}: /bot vanish\n${alice.username}: /bot still there?`);
  });
});
