import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { RateLimitedError } from '../src/services/errors';
import { LruCache } from '../src/services/lru-cache';
import { RecentIds } from '../src/services/recent-ids';
import { LoginThrottle } from '../src/services/login-throttle';
import { KeyedRateLimiter, WindowCounter } from '../src/services/rate-limit';
import { createTestApp, signUp, type TestApp } from './support/app';

/**
 * Every map the server keeps in memory has a bound: many keys (users, addresses, chats) leave it
 * at its bound, never above. Clocks are injected, so ages are set, not waited for.
 */

const MANY = 10_000;

describe('LruCache', () => {
  test('stays at its bound after many keys, keeping the most recently used', () => {
    const cache = new LruCache<number, string>(100, 60_000);
    for (let key = 0; key < MANY; key++) {
      cache.set(key, `v${key}`);
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    expect(cache.get(MANY - 1)).toBe(`v${MANY - 1}`);
    expect(cache.get(0)).toBeUndefined();
  });

  test('a read makes an entry recent: the least recently used goes first', () => {
    const cache = new LruCache<string, number>(2, 60_000);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.get('a');
    cache.set('c', 3);
    expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual([1, undefined, 3]);
  });

  test('an entry older than its ttl reads as absent and is dropped', () => {
    const clock = { now: 0 };
    const cache = new LruCache<string, number>(10, 1_000, () => clock.now);
    cache.set('a', 1);
    clock.now = 999;
    expect(cache.get('a')).toBe(1);
    clock.now = 1_000;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  test('deleteWhere drops exactly the entries it picks', () => {
    const cache = new LruCache<number, string>(10, 60_000);
    for (let key = 0; key < 6; key++) cache.set(key, key % 2 === 0 ? 'even' : 'odd');
    cache.deleteWhere((_key, value) => value === 'even');
    expect(cache.size).toBe(3);
    expect([cache.get(1), cache.get(2)]).toEqual(['odd', undefined]);
  });
});

describe('RecentIds', () => {
  test('stays at its bound after many ids, forgetting the oldest first, and counts every id added', () => {
    const recent = new RecentIds(100);
    for (let id = 0; id < MANY; id++) recent.add(id);
    expect(recent.count).toBe(MANY);
    expect([recent.has(MANY - 100), recent.has(MANY - 101)]).toEqual([true, false]);
    expect(recent.since(0).size).toBe(100);
  });

  test('an id added again while remembered keeps its place; since() gives the ids from a place on', () => {
    const recent = new RecentIds(10);
    for (const id of [7, 8, 7, 9]) recent.add(id);
    expect(recent.count).toBe(3);
    expect([...recent.since(1)]).toEqual([8, 9]);
  });

  test('an id deleted and added again is forgotten from its new place, not its old one', () => {
    const recent = new RecentIds(3);
    recent.add(1);
    recent.add(2);
    recent.delete(1);
    recent.add(1);
    recent.add(3);
    // Place 0 (the first 1) is overwritten here: 1 stands at place 2 and stays.
    recent.add(4);
    expect([1, 2, 3, 4].map((id) => recent.has(id))).toEqual([true, false, true, true]);
    expect([...recent.since(0)]).toEqual([1, 3, 4]);
  });
});

describe('KeyedRateLimiter', () => {
  const limiter = (clock: { now: number }, maxKeys?: number) =>
    new KeyedRateLimiter<number>({ ratePerSecond: 1, burst: 3, message: 'slow down', maxKeys, now: () => clock.now });

  test('each key has its own burst, then RATE_LIMITED with the seconds until the next token', () => {
    const clock = { now: 0 };
    const limit = limiter(clock);
    for (let i = 0; i < 3; i++) limit.take(1);
    const refused = (() => {
      try {
        limit.take(1);
      } catch (error) {
        return error;
      }
    })();
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect(refused).toMatchObject({ message: 'slow down', retryAfterSeconds: 1 });
    limit.take(2);
    clock.now = 1_000;
    limit.take(1);
    expect(() => limit.take(1)).toThrow('slow down');
  });

  test('stays at its bound after many keys', () => {
    const limit = limiter({ now: 0 }, 100);
    for (let key = 0; key < MANY; key++) limit.take(key);
    expect(limit.size).toBeLessThanOrEqual(100);
    expect(limit.size).toBeGreaterThan(0);
  });

  test('a clock set back takes no tokens away', () => {
    const clock = { now: 10_000 };
    const limit = limiter(clock);
    limit.take(1);
    clock.now = 0;
    limit.take(1);
    limit.take(1);
    expect(() => limit.take(1)).toThrow('slow down');
  });

  test('a rate of 0 turns the limit off and keeps nothing', () => {
    const limit = new KeyedRateLimiter<number>({ ratePerSecond: 0, burst: 1, message: 'never' });
    for (let i = 0; i < 100; i++) limit.take(i % 3);
    expect(limit.size).toBe(0);
  });
});

describe('WindowCounter', () => {
  test('stays at its bound after many keys, forgetting the least recently used first', () => {
    const counter = new WindowCounter({ limit: 1, windowMs: 60_000, message: 'wait', maxKeys: 100, now: () => 0 });
    for (let key = 0; key < MANY; key++) counter.reserve([`k${key}`]);
    expect(counter.size).toBeLessThanOrEqual(100);
    expect(() => counter.reserve([`k${MANY - 1}`])).toThrow('wait');
    counter.reserve(['k0']);
  });

  test('an ended window is forgotten: the key starts counting afresh', () => {
    const clock = { now: 0 };
    const counter = new WindowCounter({ limit: 1, windowMs: 1_000, message: 'wait', now: () => clock.now });
    counter.reserve(['jane']);
    clock.now = 999;
    expect(() => counter.reserve(['jane'])).toThrow('wait');
    clock.now = 1_000;
    counter.reserve(['jane']);
  });

  test('LoginThrottle: a spray of usernames from many addresses stays within the bound', () => {
    const throttle = new LoginThrottle(5, { now: () => 0 });
    for (let attempt = 0; attempt < 150_000; attempt++) {
      throttle.reserve(`user${attempt}`, `10.${(attempt >> 16) & 255}.${(attempt >> 8) & 255}.${attempt & 255}`);
    }
    expect(throttle.size).toBeLessThanOrEqual(100_000);
  });
});

describe('ChatService membership cache', () => {
  let t: TestApp;
  const queries: string[] = [];
  beforeAll(async () => {
    t = await createTestApp({}, { logQuery: (query) => queries.push(query) });
  });
  afterAll(() => t.cleanup());

  test('answers a repeated check from memory until forgotten, for one user, one chat, or one membership', async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const { chats } = t.app.services;
    const owner = await t.app.services.auth.authenticate(alice.token);
    const first = await chats.create(owner, { name: 'one' });
    const second = await chats.create(owner, { name: 'two' });
    await chats.invite(owner, first.id, { username: bob.username });
    const check = async (userId: number, chatId: number) => {
      const before = queries.length;
      await chats.requireParticipant(userId, chatId);
      return queries.length > before ? 'database' : 'memory';
    };
    const everyone = async () => [await check(alice.id, first.id), await check(bob.id, first.id), await check(alice.id, second.id)];

    await everyone();
    expect(await everyone()).toEqual(['memory', 'memory', 'memory']);

    chats.forgetMemberships({ chatId: first.id });
    expect(await everyone()).toEqual(['database', 'database', 'memory']);

    chats.forgetMemberships({ userId: alice.id });
    expect(await everyone()).toEqual(['database', 'memory', 'database']);

    chats.forgetMemberships({ userId: bob.id, chatId: first.id });
    expect(await everyone()).toEqual(['memory', 'database', 'memory']);
  });
});
