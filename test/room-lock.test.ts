import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Redis } from 'ioredis';
import { RoomLockLost, redisRoomLock } from '../src/services/room-lock';
import { quietLog } from './support/logs';
import type { PrivateRedis } from './support/redis-server';
import { startPrivateRedis } from './support/redis-server';

/**
 * The per-room Redis lock on a Redis of the test's own (it is frozen in the last test): waiting
 * gives up on request, and a lock that is lost (key gone, someone else's, or unrenewable for a TTL)
 * aborts the work's signal. Tests wait for the signals, never for time.
 */

const PREFIX = 'room-lock-test:';
/** Renewals come fast so a test sees one at once; the TTL is long unless a test is about it. */
const FAST = { ttlMs: 10_000, renewEveryMs: 20 };

let server: PrivateRedis;
/** The lock's client, and the test's own hand on the keys. */
let redis: Redis;
let admin: Redis;
beforeAll(async () => {
  server = await startPrivateRedis();
  [redis, admin] = [new Redis(server.url), new Redis(server.url)];
});
afterAll(async () => {
  server.thaw();
  redis.disconnect();
  admin.disconnect();
  await server.stop();
});

const key = (chatId: number) => `${PREFIX}bot-lock:${chatId}`;
const notAborting = () => new AbortController().signal;
const abortReason = (signal: AbortSignal) =>
  new Promise<unknown>((resolve) => (signal.aborted ? resolve(signal.reason) : signal.addEventListener('abort', () => resolve(signal.reason), { once: true })));

describe('the Redis room lock', () => {
  test('runs the work holding the key, and deletes it after', async () => {
    const lock = redisRoomLock(redis, PREFIX, quietLog(), FAST);
    const result = await lock.withLock(
      1,
      async (lost) => {
        expect(await admin.get(key(1))).not.toBeNull();
        expect(lost.aborted).toBe(false);
        return 'done';
      },
      notAborting(),
    );
    expect(result).toBe('done');
    expect(await admin.exists(key(1))).toBe(0);
  });

  test('waiting for a lock someone holds gives up when its signal aborts; the work never runs', async () => {
    const lock = redisRoomLock(redis, PREFIX, quietLog(), FAST);
    await admin.set(key(2), 'someone else');
    const shutdown = new AbortController();
    let ran = false;
    // Two SET NX attempts seen through MONITOR (a connection of its own): it is retrying. The client
    // that makes the MONITOR connection never connects itself: its ready check, seen by MONITOR while
    // ioredis switched modes, once reached the monitor as a reply nothing waited for.
    const watcher = new Redis(server.url, { lazyConnect: true });
    const monitor = await watcher.monitor();
    const retrying = new Promise<void>((resolve) => {
      let attempts = 0;
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args[0]?.toLowerCase() === 'set' && args[1] === key(2) && ++attempts === 2) resolve();
      });
    });
    const waiting = lock.withLock(2, async () => void (ran = true), shutdown.signal);
    await retrying.finally(() => {
      monitor.disconnect();
      watcher.disconnect();
    });
    const reason = new Error('shutting down');
    shutdown.abort(reason);
    expect(await waiting.catch((error: unknown) => error)).toBe(reason);
    expect(ran).toBe(false);
    expect(await admin.get(key(2))).toBe('someone else');
  });

  test('a key deleted under the holder: the next renewal aborts the work', async () => {
    const lock = redisRoomLock(redis, PREFIX, quietLog(), FAST);
    const reason = await lock.withLock(
      3,
      async (lost) => {
        await admin.del(key(3));
        return abortReason(lost);
      },
      notAborting(),
    );
    expect(reason).toBeInstanceOf(RoomLockLost);
    expect((reason as Error).message).toContain('no longer ours');
  });

  test('a key taken by someone else: the work is aborted, and the release leaves their key alone', async () => {
    const lock = redisRoomLock(redis, PREFIX, quietLog(), FAST);
    const reason = await lock.withLock(
      4,
      async (lost) => {
        await admin.set(key(4), 'the new holder');
        return abortReason(lost);
      },
      notAborting(),
    );
    expect(reason).toBeInstanceOf(RoomLockLost);
    expect(await admin.get(key(4))).toBe('the new holder');
  });

  // Last: it freezes the test's Redis.
  test('Redis hung for longer than the TTL: the work is aborted, for the key may have expired', async () => {
    const lock = redisRoomLock(redis, PREFIX, quietLog(), { ttlMs: 300, renewEveryMs: 50 });
    const reason = await lock.withLock(
      5,
      async (lost) => {
        server.freeze();
        const why = await abortReason(lost);
        server.thaw(); // so the release can go through
        return why;
      },
      notAborting(),
    );
    expect(reason).toBeInstanceOf(RoomLockLost);
    expect((reason as Error).message).toContain('unrenewed for 300 ms');
  });
});
