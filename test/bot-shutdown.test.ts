import { Database } from 'bun:sqlite';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Redis } from 'ioredis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import type { ClusterUser, Instance } from './support/cluster';
import { ok, signUpOn, startInstance } from './support/cluster';
import type { FakeGemini, FakeGeminiReply, FakeGeminiRequest } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import type { PrivateRedis } from './support/redis-server';
import { startPrivateRedis } from './support/redis-server';
import type { Frame } from './support/sockets';

/**
 * SIGTERM is bounded: a real server process (`bun src/server.ts`) on a SQLite file, with a fake
 * Gemini whose answers never end on their own. After the signal no model call starts (counted at
 * the fake), running answers get SHUTDOWN_GRACE_MS and are then stored stopped or failed, queued
 * asks stay pending for the next start, and the process is gone within the grace period plus one
 * second, even when Redis hangs. Waits are on events (frames, fake requests, process exit).
 */

const GRACE_MS = 1_000;
/** The promise: gone within the grace period and one second. */
const EXIT_BOUND_MS = GRACE_MS + 1_000;
const SHUT_DOWN = 'The server shut down before the answer finished';

const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-bot-shutdown-'));
let fake: FakeGemini;
const instances: Instance[] = [];
beforeAll(async () => {
  fake = await startFakeGemini();
});
afterAll(async () => {
  await Promise.all(instances.map((instance) => instance.kill()));
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});

function settings(database: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: `file:${join(dir, database)}`,
    SECRET_KEY: 'bot-shutdown-test-secret-key-0123456789abcdef',
    GEMINI_API_KEY: fake.apiKey,
    GEMINI_BASE_URL: fake.url,
    SHUTDOWN_GRACE_MS: String(GRACE_MS),
    BOT_MAX_CONCURRENT_CALLS: '2',
    BOT_RATE_LIMIT: '0',
    WS_RATE_LIMIT: '0',
    ...extra,
  };
}

async function start(name: string, env: Record<string, string>): Promise<Instance> {
  const instance = await startInstance(name, env);
  instances.push(instance);
  return instance;
}

const room = async (instance: Instance, owner: ClusterUser, name: string) =>
  (await ok<{ id: number }>(instance.request('/api/chats', { method: 'POST', token: owner.token, json: { name } }))).id;

const post = (instance: Instance, user: ClusterUser, chatId: number, content: string) =>
  ok<{ id: number }>(instance.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } }));

/** Posts a `/bot` ask answered by `reply` and resolves once its Gemini request has arrived. */
async function askRunning(instance: Instance, user: ClusterUser, chatId: number, content: string, reply: FakeGeminiReply) {
  fake.reply(reply);
  const request = fake.nextRequest();
  const ask = await post(instance, user, chatId, content);
  return { ask, request: await request };
}

const isBot = (chatId: number, complete: boolean) => (frame: Frame) =>
  frame.type === 'bot_stream' && frame.chat_id === chatId && frame.is_complete === complete;

/** Each row of the file's messages table that answers or asks, read after the process is gone. */
function rows(database: string) {
  const db = new Database(join(dir, database), { readonly: true });
  try {
    return db
      .query<{ id: number; chat_id: number; content: string; status: string; reply_to_id: number | null; ask_pending: number }, []>(
        'SELECT id, chat_id, content, status, reply_to_id, ask_pending FROM messages ORDER BY id',
      )
      .all();
  } finally {
    db.close();
  }
}

/** Sends SIGTERM and resolves with the exit code and how long the process took to be gone. */
async function terminate(instance: Instance) {
  const signalledAt = performance.now();
  instance.proc.kill('SIGTERM');
  const code = await instance.exited;
  return { code, tookMs: performance.now() - signalledAt };
}

describe('SIGTERM with answers running and asks queued', () => {
  test('no model call starts after the signal; running answers are stored stopped or failed after the grace period; queued asks wait for the next start', async () => {
    const database = 'queued.db';
    const instance = await start('stopping', settings(database));
    const alice = await signUpOn(instance, 'alice');
    const [roomA, roomB, roomC] = [await room(instance, alice, 'A'), await room(instance, alice, 'B'), await room(instance, alice, 'C')];
    const member = instance.kit.chat(alice.token);
    await member.opened;
    await member.join(roomA);
    await member.join(roomB);

    // Both call slots taken: room A's answer has written text, room B's nothing yet.
    const writing = await askRunning(instance, alice, roomA, '/bot write slowly', { kind: 'hang-after', chunks: ['Half written'] });
    await member.next(isBot(roomA, false), "room A's first delta");
    const silent = await askRunning(instance, alice, roomB, '/bot think slowly', { kind: 'hang' });
    // Queued: behind each room's running answer, and room C waiting for a call slot.
    const queued = [
      await post(instance, alice, roomA, '/bot next in A'),
      await post(instance, alice, roomB, '/bot next in B'),
      await post(instance, alice, roomC, '/bot only in C'),
    ];
    const requestsAtSignal = fake.requests.length;
    expect(requestsAtSignal).toBe(2);

    const { code, tookMs } = await terminate(instance);
    expect(code).toBe(0);
    expect(tookMs).toBeLessThan(EXIT_BOUND_MS);
    expect(tookMs).toBeGreaterThanOrEqual(GRACE_MS); // the running answers had their grace period
    expect(fake.requests.length).toBe(requestsAtSignal);
    for (const request of [writing.request, silent.request]) {
      await request.closed;
      expect(request.aborted).toBe(true);
    }

    // The room heard how each answer ended before its socket was closed.
    const stopped = await member.next(isBot(roomA, true), "room A's completion");
    expect(stopped).toMatchObject({ full_response: 'Half written', stopped: true, error: SHUT_DOWN });
    const failed = await member.next(isBot(roomB, true), "room B's completion");
    expect(failed).toMatchObject({ full_response: '', error: SHUT_DOWN });
    expect(failed.stopped).toBeUndefined();
    expect((await member.closed).code).toBe(1001);

    const stored = rows(database);
    const answerTo = (askId: number) => stored.filter((row) => row.reply_to_id === askId);
    expect(answerTo(writing.ask.id)).toMatchObject([{ status: 'stopped', content: 'Half written' }]);
    expect(answerTo(silent.ask.id)).toMatchObject([{ status: 'failed', content: '' }]);
    for (const ask of queued) {
      expect(answerTo(ask.id)).toEqual([]);
      expect(stored.find((row) => row.id === ask.id)!.ask_pending).toBe(1);
    }

    // The next start answers them, in their rooms' order, each once.
    const restarted = await createApp(loadConfig(settings(database, { LOG_LEVEL: 'silent' })));
    try {
      await restarted.services.bot.idle();
    } finally {
      await restarted.close();
    }
    const answered = fake.requests.slice(requestsAtSignal).map((request: FakeGeminiRequest) => request.body.contents.at(-1).parts[0].text.split('\n').at(-1));
    expect(answered.toSorted()).toEqual([`${alice.username}: /bot next in A`, `${alice.username}: /bot next in B`, `${alice.username}: /bot only in C`]);
    const after = rows(database);
    for (const ask of queued) {
      expect(after.filter((row) => row.reply_to_id === ask.id).map((row) => row.status)).toEqual(['complete']);
      expect(after.find((row) => row.id === ask.id)!.ask_pending).toBe(0);
    }
  }, 30_000);
});

describe('SIGTERM with Redis', () => {
  let redis: PrivateRedis;
  let admin: Redis;
  beforeAll(async () => {
    redis = await startPrivateRedis();
    admin = new Redis(redis.url);
  });
  afterAll(async () => {
    admin.disconnect();
    await redis.stop();
  });

  test('an ask waiting for a room lock another instance holds gives the wait up: it stays pending, nothing is called', async () => {
    const database = 'lock-wait.db';
    const prefix = `bot-shutdown:${crypto.randomUUID()}:`;
    const instance = await start('waiting', settings(database, { REDIS_URL: redis.url, REDIS_PREFIX: prefix }));
    const alice = await signUpOn(instance, 'alice');
    const [held, free] = [await room(instance, alice, 'held elsewhere'), await room(instance, alice, 'running here')];
    await admin.set(`${prefix}bot-lock:${held}`, 'another instance', 'PX', 60_000);

    const running = await askRunning(instance, alice, free, '/bot take your time', { kind: 'hang-after', chunks: ['Some'] });
    const waiting = await post(instance, alice, held, '/bot behind the other instance');
    const requestsAtSignal = fake.requests.length;

    const { code, tookMs } = await terminate(instance);
    expect(code).toBe(0);
    expect(tookMs).toBeLessThan(EXIT_BOUND_MS);
    expect(fake.requests.length).toBe(requestsAtSignal);
    await running.request.closed;
    const stored = rows(database);
    expect(stored.filter((row) => row.reply_to_id === running.ask.id)).toMatchObject([{ status: 'stopped', content: 'Some' }]);
    expect(stored.filter((row) => row.reply_to_id === waiting.id)).toEqual([]);
    expect(stored.find((row) => row.id === waiting.id)!.ask_pending).toBe(1);
    // Its own lock released; the other instance's untouched.
    expect(await admin.exists(`${prefix}bot-lock:${free}`)).toBe(0);
    expect(await admin.get(`${prefix}bot-lock:${held}`)).toBe('another instance');
  }, 30_000);

  test('Redis hung: the process still exits within the grace period and one second', async () => {
    const database = 'redis-hung.db';
    const instance = await start('hung', settings(database, { REDIS_URL: redis.url, REDIS_PREFIX: `bot-shutdown:${crypto.randomUUID()}:` }));
    const alice = await signUpOn(instance, 'alice');
    const chatId = await room(instance, alice, 'hung');
    const running = await askRunning(instance, alice, chatId, '/bot go on', { kind: 'hang-after', chunks: ['Started'] });
    redis.freeze();
    try {
      const { tookMs } = await terminate(instance);
      expect(tookMs).toBeLessThan(EXIT_BOUND_MS);
      expect(instance.output()).toContain('Shutdown did not finish');
    } finally {
      redis.thaw();
    }
    await running.request.closed;
    // The database was fine: the answer was stored before the release of its lock hung.
    expect(rows(database).filter((row) => row.reply_to_id === running.ask.id)).toMatchObject([{ status: 'stopped', content: 'Started' }]);
  }, 30_000);
});

describe('SHUTDOWN_GRACE_MS', () => {
  test('defaults to 10 s and takes a whole number of milliseconds', () => {
    const secret = { SECRET_KEY: 'bot-shutdown-test-secret-key-0123456789abcdef' };
    expect(loadConfig(secret).shutdownGraceMs).toBe(10_000);
    expect(loadConfig({ ...secret, SHUTDOWN_GRACE_MS: '2500' }).shutdownGraceMs).toBe(2_500);
    expect(() => loadConfig({ ...secret, SHUTDOWN_GRACE_MS: '2s' })).toThrow('SHUTDOWN_GRACE_MS=2s is not valid');
  });
});
