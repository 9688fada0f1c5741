import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from 'bun:test';
import type { Server } from 'bun';
import { AppError } from '../src/services/errors';
import type { Argon2 } from '../src/services/password-hasher';
import { PasswordHasher } from '../src/services/password-hasher';
import { createTestApp, signUp, type TestApp } from './support/app';

/**
 * What stands between clients and the password hashes: logins counted before the hash, registrations
 * per address, and a cap on hashes running at once. Each test counts hashes rather than timing them.
 */

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

/** Counts calls of `Bun.password.verify` and how many run at once; `hold` keeps each call waiting until released. */
function watchVerify({ hold = false } = {}) {
  const original = Bun.password.verify.bind(Bun.password);
  const gate = deferred();
  if (!hold) gate.resolve();
  const stats = { calls: 0, running: 0, maxRunning: 0 };
  const firstCall = deferred();
  const spy = spyOn(Bun.password, 'verify').mockImplementation(async (...args: Parameters<typeof Bun.password.verify>) => {
    stats.calls++;
    firstCall.resolve();
    stats.running++;
    stats.maxRunning = Math.max(stats.maxRunning, stats.running);
    try {
      await gate.promise;
      return await original(...args);
    } finally {
      stats.running--;
    }
  });
  return { stats, firstCall: firstCall.promise, release: () => gate.resolve(), restore: () => spy.mockRestore() };
}

const login = (t: TestApp, username: string, password: string) => t.request('/api/auth/login', { method: 'POST', json: { username, password } });

describe('LOGIN_RATE_LIMIT counts an attempt before its hash', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ LOGIN_RATE_LIMIT: '5' });
  });
  afterAll(() => t.cleanup());

  test('100 wrong passwords for one user sent at once: only 5 are checked, the rest are 429 without a hash', async () => {
    const victim = await signUp(t);
    const verify = watchVerify();
    try {
      const responses = await Promise.all(Array.from({ length: 100 }, () => login(t, victim.username, 'wrong-password')));
      const statuses = responses.map((response) => response.status);
      expect(statuses.filter((status) => status === 401)).toHaveLength(5);
      expect(statuses.filter((status) => status === 429)).toHaveLength(95);
      expect(verify.stats.calls).toBe(5);
      const refused = responses.find((response) => response.status === 429)!;
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await refused.json()).toEqual({ detail: 'Too many failed login attempts, try again later' });
      // Locked out for the window, the right password included, and still without a hash.
      expect((await login(t, victim.username, victim.password)).status).toBe(429);
      expect(verify.stats.calls).toBe(5);
    } finally {
      verify.restore();
    }
  });

  test('a successful login gives its attempt back', async () => {
    const user = await signUp(t);
    for (let i = 0; i < 4; i++) expect((await login(t, user.username, 'wrong-password')).status).toBe(401);
    for (let i = 0; i < 10; i++) expect((await login(t, user.username, user.password)).status).toBe(200);
    expect((await login(t, user.username, 'wrong-password')).status).toBe(401);
    expect((await login(t, user.username, 'wrong-password')).status).toBe(429);
  });
});

describe('REGISTER_RATE_LIMIT=3 per client address', () => {
  let t: TestApp;
  let server: Server<unknown>;
  beforeAll(async () => {
    t = await createTestApp({ REGISTER_RATE_LIMIT: '3' });
    server = t.listen();
  });
  afterAll(async () => {
    await server.stop(true);
    await t.cleanup();
  });

  // Over a real socket: in-process requests have no client address.
  const register = (username: string) =>
    fetch(`http://${server.hostname}:${server.port}/api/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, email: `${username}@example.com`, password: 'password123' }),
    });

  test('the fourth registration from one address is 429 with Retry-After, and stores nothing', async () => {
    const before = await t.app.services.db.user.count();
    for (const name of ['reg_one', 'reg_two']) expect((await register(name)).status).toBe(200);
    // A refused attempt counts too (a taken name), so registration is no free username oracle.
    expect((await register('reg_one')).status).toBe(400);

    const refused = await register('reg_four');
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(3_590);
    expect(retryAfter).toBeLessThanOrEqual(3_600);
    expect(await refused.json()).toEqual({ detail: 'Too many registrations from this address, try again later' });
    expect(await t.app.services.db.user.count()).toBe(before + 2);

    const overGraphql = await fetch(`http://${server.hostname}:${server.port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'mutation { register(username: "reg_five", email: "reg_five@example.com", password: "password123") { token } }' }),
    });
    const body = (await overGraphql.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]).toMatchObject({ message: 'Too many registrations from this address, try again later', extensions: { code: 'RATE_LIMITED' } });
    expect(await t.app.services.db.user.count()).toBe(before + 2);
  });
});

describe('PasswordHasher', () => {
  /** An argon2 stand-in whose calls finish only when the test says so. */
  function heldArgon2() {
    const pending: (() => void)[] = [];
    const stats = { started: 0, running: 0, maxRunning: 0 };
    const held = async <T>(value: T): Promise<T> => {
      stats.started++;
      stats.running++;
      stats.maxRunning = Math.max(stats.maxRunning, stats.running);
      const done = deferred();
      pending.push(done.resolve);
      await done.promise;
      stats.running--;
      return value;
    };
    const argon2 = { hash: () => held('hashed'), verify: () => held(true) } as unknown as Argon2;
    return { argon2, stats, finishOldest: () => pending.shift()?.() };
  }

  test('runs at most `concurrency` at once, queues `maxWaiting`, and refuses the next at once with SERVICE_UNAVAILABLE', async () => {
    const fake = heldArgon2();
    const hasher = new PasswordHasher({ concurrency: 2, maxWaiting: 3 }, fake.argon2);
    const admitted = Array.from({ length: 5 }, (_, i) => (i % 2 === 0 ? hasher.hash('pw') : hasher.verify('pw', 'hashed')));
    const refused = await hasher.verify('pw', 'hashed').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ code: 'SERVICE_UNAVAILABLE', message: 'Server busy, try again', retryAfterSeconds: 1, status: 503 });
    expect(fake.stats).toEqual({ started: 2, running: 2, maxRunning: 2 });

    // Each finished call hands its turn to the longest waiter.
    for (let finished = 1; finished <= 5; finished++) {
      fake.finishOldest();
      await admitted[finished - 1];
      expect(fake.stats.started).toBe(Math.min(5, finished + 2));
      expect(fake.stats.running).toBeLessThanOrEqual(2);
    }
    expect(await Promise.all(admitted)).toEqual(['hashed', true, 'hashed', true, 'hashed']);
    expect(fake.stats.maxRunning).toBe(2);
  });

  test('a failed hash frees its turn too', async () => {
    const hasher = new PasswordHasher(
      { concurrency: 1, maxWaiting: 0 },
      {
        hash: () => Promise.reject(new Error('argon2 failed')),
        verify: () => Promise.resolve(true),
      },
    );
    const failure = await hasher.hash('pw').catch((error: unknown) => error);
    expect((failure as Error).message).toBe('argon2 failed');
    expect(await hasher.verify('pw', 'hashed')).toBe(true);
  });
});

describe('PASSWORD_HASH_CONCURRENCY=1, PASSWORD_HASH_QUEUE=2 on every transport', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '2' });
  });
  afterAll(() => t.cleanup());
  let verify: ReturnType<typeof watchVerify> | undefined;
  afterEach(() => verify?.restore());

  test('ten logins at once: one hash runs, two wait, seven are 503 "Server busy, try again" at once', async () => {
    const user = await signUp(t);
    verify = watchVerify({ hold: true });
    const busy = deferred();
    let refusals = 0;
    const statuses = Array.from({ length: 10 }, () =>
      login(t, user.username, user.password).then(async (response) => {
        if (response.status === 503) {
          expect(response.headers.get('retry-after')).toBe('1');
          expect(await response.json()).toEqual({ detail: 'Server busy, try again' });
          if (++refusals === 7) busy.resolve();
        }
        return response.status;
      }),
    );
    // The seven refusals answer while the admitted three are still held: nothing waited on a timer.
    await busy.promise;
    const overGraphql = await t.request('/graphql', {
      method: 'POST',
      json: { query: 'mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }', variables: { u: user.username, p: user.password } },
    });
    const body = (await overGraphql.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]).toMatchObject({ message: 'Server busy, try again', extensions: { code: 'SERVICE_UNAVAILABLE' } });

    verify.release();
    expect((await Promise.all(statuses)).sort()).toEqual([200, 200, 200, 503, 503, 503, 503, 503, 503, 503]);
    expect(verify.stats.calls).toBe(3);
    expect(verify.stats.maxRunning).toBe(1);
  });

  test('a busy server does not count against the user: refused logins give their attempt back', async () => {
    const throttled = await createTestApp({ PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '0', LOGIN_RATE_LIMIT: '2' });
    try {
      // The decoy hash made at start holds the only turn until it is done; a login of an unknown
      // user waits for it.
      expect((await login(throttled, 'nobody_here', 'wrong-password')).status).toBe(401);
      const user = await signUp(throttled);
      verify = watchVerify({ hold: true });
      const running = login(throttled, user.username, 'wrong-password');
      await verify.firstCall;
      // One wrong password is being checked; of five more, one is counted but finds the hasher busy
      // (503, and its attempt given back), and the other four find the count at the limit (429).
      const refused = await Promise.all(Array.from({ length: 5 }, () => login(throttled, user.username, 'wrong-password')));
      expect(refused.map((response) => response.status).sort()).toEqual([429, 429, 429, 429, 503]);
      verify.release();
      expect((await running).status).toBe(401);
      expect((await login(throttled, user.username, user.password)).status).toBe(200);
    } finally {
      await throttled.cleanup();
    }
  });
});
