import { describe, expect, test } from 'bun:test';
import { availableParallelism } from 'node:os';
import { ConfigError, loadConfig } from '../src/config';

/** The abuse limits' settings: defaults a normal client never meets, and a ConfigError saying the fix for a bad value. */

const SECRET = 'limits-config-test-secret-key-long-enough-0123';

describe('abuse limit settings', () => {
  test('defaults', () => {
    const { limits } = loadConfig({ SECRET_KEY: SECRET });
    expect(limits).toMatchObject({
      messagesPerSecond: 5,
      messageBurst: 20,
      registrationsPerHour: 20,
      oauthStartsPerMinute: 30,
      passwordHashConcurrency: availableParallelism(),
      passwordHashQueue: 100,
      socketsPerUser: 20,
    });
  });

  test('each is read from its variable; 0 turns a rate or cap off', () => {
    const { limits } = loadConfig({
      SECRET_KEY: SECRET,
      MESSAGE_RATE_LIMIT: '0',
      MESSAGE_BURST: '7',
      REGISTER_RATE_LIMIT: '0',
      OAUTH_START_RATE_LIMIT: '0',
      PASSWORD_HASH_CONCURRENCY: '4',
      PASSWORD_HASH_QUEUE: '0',
      MAX_SOCKETS_PER_USER: '0',
    });
    expect(limits).toMatchObject({
      messagesPerSecond: 0,
      messageBurst: 7,
      registrationsPerHour: 0,
      oauthStartsPerMinute: 0,
      passwordHashConcurrency: 4,
      passwordHashQueue: 0,
      socketsPerUser: 0,
    });
  });

  test.each([
    ['MESSAGE_RATE_LIMIT', '-1'],
    ['MESSAGE_RATE_LIMIT', '2.5'],
    ['MESSAGE_BURST', '0'],
    ['REGISTER_RATE_LIMIT', 'lots'],
    ['OAUTH_START_RATE_LIMIT', '-1'],
    ['PASSWORD_HASH_CONCURRENCY', '0'],
    ['PASSWORD_HASH_QUEUE', '-5'],
    ['MAX_SOCKETS_PER_USER', '1e3'],
  ])('%s=%s is a ConfigError that names it and says what to set', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ SECRET_KEY: SECRET, [name]: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`${name}=${value} is not valid`);
    expect((error as Error).message).toContain('whole number');
  });
});

describe('upload admission settings', () => {
  test('defaults: four bodies read at once, 32 waiting for at most 5 s; each read from its variable', () => {
    expect(loadConfig({ SECRET_KEY: SECRET }).uploads).toMatchObject({ concurrency: 4, queue: 32, queueWaitMs: 5000 });
    const uploads = loadConfig({ SECRET_KEY: SECRET, MAX_CONCURRENT_UPLOADS: '2', UPLOAD_QUEUE: '0', UPLOAD_QUEUE_WAIT_MS: '9000' }).uploads;
    expect(uploads).toMatchObject({ concurrency: 2, queue: 0, queueWaitMs: 9000 });
  });

  test('an admitted body must bring 16 KiB/s, checked over 5 s of waiting for it; 0 turns the check off', () => {
    expect(loadConfig({ SECRET_KEY: SECRET }).uploads.pace).toEqual({ minBytesPerSecond: 16384, windowMs: 5000 });
    const pace = loadConfig({ SECRET_KEY: SECRET, UPLOAD_MIN_BYTES_PER_SECOND: '0', UPLOAD_MIN_RATE_WINDOW_MS: '60000' }).uploads.pace;
    expect(pace).toEqual({ minBytesPerSecond: 0, windowMs: 60000 });
  });

  test.each([
    ['MAX_CONCURRENT_UPLOADS', '0', 'is not valid: set it to a whole number from 1'],
    ['UPLOAD_QUEUE', '-1', 'is not valid: set it to a whole number from 0'],
    ['UPLOAD_QUEUE_WAIT_MS', 'soon', 'is not valid: set it to a whole number from 1'],
    ['UPLOAD_QUEUE_WAIT_MS', '10000', 'is too long: the server drops a request it has not read for 10 s, so set it to at most 9000'],
    ['UPLOAD_MIN_BYTES_PER_SECOND', '16k', 'is not valid: set it to a whole number from 0 to 1073741824, or unset it for 16384'],
    ['UPLOAD_MIN_BYTES_PER_SECOND', '-1', 'is not valid: set it to a whole number from 0'],
    ['UPLOAD_MIN_RATE_WINDOW_MS', '0', 'is not valid: set it to a whole number from 1 to 60000, or unset it for 5000'],
    ['UPLOAD_MIN_RATE_WINDOW_MS', '60001', 'is not valid: set it to a whole number from 1 to 60000'],
  ])('%s=%s is a ConfigError that says the fix', (name, value, fix) => {
    expect(() => loadConfig({ SECRET_KEY: SECRET, [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ SECRET_KEY: SECRET, [name]: value })).toThrow(`${name}=${value} ${fix}`);
  });
});
