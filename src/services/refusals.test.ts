import { expect, test } from 'bun:test';
import { LoginThrottle } from './login-throttle';
import { PasswordHasher } from './password-hasher';
import { KeyedRateLimiter, WindowCounter } from './rate-limit';
import { SocketQuota } from './socket-quota';

/** Every limit and cap reports each refusal it makes (the metrics count them), and only refusals. */

function counter() {
  const counted = { refusals: 0 };
  return { counted, onRefused: () => void counted.refusals++ };
}

test('a token bucket per key: each take over the burst', () => {
  const { counted, onRefused } = counter();
  const limit = new KeyedRateLimiter<number>({ ratePerSecond: 1, burst: 2, message: 'slow down', now: () => 0, onRefused });
  limit.take(1);
  limit.take(1);
  expect(counted.refusals).toBe(0);
  expect(() => limit.take(1)).toThrow('slow down');
  expect(() => limit.take(1)).toThrow('slow down');
  limit.take(2);
  expect(counted.refusals).toBe(2);
});

test('a window counter and the login throttle built on it: each attempt over the limit', () => {
  const { counted, onRefused } = counter();
  const window = new WindowCounter({ limit: 1, windowMs: 60_000, message: 'wait', now: () => 0, onRefused });
  window.reserve(['a']);
  expect(() => window.reserve(['a'])).toThrow('wait');
  expect(counted.refusals).toBe(1);

  const logins = counter();
  const throttle = new LoginThrottle(1, { now: () => 0, onRefused: logins.onRefused });
  throttle.reserve('ana', null);
  expect(() => throttle.reserve('ana', null)).toThrow();
  expect(logins.counted.refusals).toBe(1);
});

test('the socket quota: each socket over the cap', () => {
  const { counted, onRefused } = counter();
  let open = 0;
  const quota = new SocketQuota(1, () => open, onRefused);
  quota.check(7);
  open = 1;
  expect(() => quota.check(7)).toThrow('Too many open sockets');
  open = 0;
  quota.check(7);
  expect(counted.refusals).toBe(1);
});

test('the password hasher: each request turned away with its queue full', async () => {
  const { counted, onRefused } = counter();
  const hashing = Promise.withResolvers<string>();
  const hasher = new PasswordHasher({ concurrency: 1, maxWaiting: 0, onRefused }, { hash: () => hashing.promise, verify: () => Promise.resolve(true) });
  const running = hasher.hash('first');
  const refused = await hasher.verify('second', 'hash').catch((error: unknown) => error);
  expect((refused as Error).message).toBe('Server busy, try again');
  hashing.resolve('hashed');
  expect(await running).toBe('hashed');
  expect(counted.refusals).toBe(1);
});
