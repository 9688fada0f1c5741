import { describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, redact } from '../src/config';
import { openDatabase } from '../src/db/client';
import { Metrics } from '../src/metrics';
import { createEventBus } from '../src/services/pubsub';
import { captureLogs } from './support/logs';
import { configError } from './support/config-errors';

/** Secrets in connection URLs never reach an error message or a log line. */

const SECRET = 'redaction-test-secret-key-that-is-long-enough';
// Nothing listens on port 1: connecting fails at once, as an outage would.
const DEAD = '127.0.0.1:1';

describe('redact', () => {
  test.each([
    ['postgresql://coop:hunter2@db:5432/coop', 'postgresql://coop:***@db:5432/coop'],
    ['redis://:hunter2@cache:6379/0', 'redis://:***@cache:6379/0'],
    ['rediss://default:hunter2@cache:6380', 'rediss://default:***@cache:6380'],
    ['redis://cache:6379?password=hunter2&db=1', 'redis://cache:6379?password=***&db=1'],
    ['postgresql://coop@db/coop?sslmode=require&sslpassword=hunter2', 'postgresql://coop@db/coop?sslmode=require&sslpassword=***'],
    // A raw `@` or `/` in the password (invalid, but people write it) is still hidden whole.
    ['postgresql://coop:hun@ter/2@db/coop', 'postgresql://coop:***@db/coop'],
  ])('%s → %s', (url, expected) => {
    expect(redact(url)).toBe(expected);
  });

  test('every URL quoted in a message is redacted, and text without secrets is left alone', () => {
    expect(redact('tried postgresql://a:one@x/db, then redis://:two@y:6379 (refused)')).toBe(
      'tried postgresql://a:***@x/db, then redis://:***@y:6379 (refused)',
    );
    for (const plain of ['file:./gemini_coop.db', 'postgresql://coop@db:5432/coop', 'listening on http://localhost:8000/graphql']) {
      expect(redact(plain)).toBe(plain);
    }
  });
});

describe('configuration errors', () => {
  test('an unsupported DATABASE_URL is named without its password', () => {
    const error = configError(() => loadConfig({ SECRET_KEY: SECRET, DATABASE_URL: 'mysql://root:hunter2@db/coop?password=hunter3' }));
    expect(error.message).toContain('mysql://root:***@db/coop?password=***');
    expectNoSecret(error.message);
  });

  test('an unsupported REDIS_URL is named without its password', () => {
    const error = configError(() => loadConfig({ SECRET_KEY: SECRET, REDIS_URL: 'http://:hunter2@cache:6379' }));
    expect(error.message).toContain('http://:***@cache:6379');
    expectNoSecret(error.message);
  });
});

describe('start-up failures', () => {
  test('an unreachable PostgreSQL is reported without the password, in the URL or in a parameter', async () => {
    const error = await openDatabase({ engine: 'postgres', timeoutMs: 1_000, url: `postgresql://postgres:hunter2@${DEAD}/coop?password=hunter3` }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`postgresql://postgres:***@${DEAD}/coop?password=***`);
    expectNoSecret((error as Error).message);
  });

  test("an unreachable Redis is reported without the password, in Redis' :password@ form or in a parameter; nothing logged has it either", async () => {
    const logs = captureLogs();
    // The server starts while Redis is unreachable (and says so); it joins when Redis answers.
    const bus = await createEventBus(`redis://:hunter2@${DEAD}/0?password=hunter3`, 'redaction-test:', logs.log, new Metrics());
    await bus.close();
    expect(logs.text()).toContain(`redis://:***@${DEAD}/0?password=***`);
    expectNoSecret(logs.text());
  });

  test('the server started with an unreachable DATABASE_URL exits with 78 and prints no secret', async () => {
    const env = { DATABASE_URL: `postgresql://postgres:hunter2@${DEAD}/coop?password=hunter3` };
    const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-redaction-'));
    try {
      const server = Bun.spawn([process.execPath, 'src/server.ts'], {
        cwd: resolve(import.meta.dir, '..'),
        env: { PATH: process.env.PATH ?? '', SECRET_KEY: SECRET, PORT: '0', HOST: '127.0.0.1', ...env },
        stdout: 'pipe',
        stderr: 'pipe',
      });
      const [code, stdout, stderr] = await Promise.all([server.exited, new Response(server.stdout).text(), new Response(server.stderr).text()]);
      expect(code).toBe(78);
      expect(stderr).toContain('Configuration error');
      expect(stderr).toContain(':***@');
      expectNoSecret(stdout + stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A whole process starting (migrations, a bounded wait for Redis) can take seconds on a busy machine.
  test('the server started with an unreachable REDIS_URL says so without the secret, and serves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-redaction-'));
    const server = Bun.spawn([process.execPath, 'src/server.ts'], {
      cwd: resolve(import.meta.dir, '..'),
      env: {
        PATH: process.env.PATH ?? '',
        SECRET_KEY: SECRET,
        DATABASE_URL: `file:${join(dir, 'x.db')}`,
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: `redis://:hunter2@${DEAD}?password=hunter3`,
      },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    try {
      const stdout = await linesUntil(server.stdout, 'listening on');
      const stderr = await linesUntil(server.stderr, 'unreachable');
      expect(stderr).toContain(':***@');
      expectNoSecret(stdout + stderr);
    } finally {
      server.kill('SIGKILL');
      await server.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});

/** What a stream printed up to the first chunk containing `needle`. */
async function linesUntil(stream: ReadableStream<Uint8Array>, needle: string): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    if (text.includes(needle)) return text;
  }
  throw new Error(`the stream ended before "${needle}": ${text}`);
}

function expectNoSecret(text: string) {
  expect(text).not.toContain('hunter2');
  expect(text).not.toContain('hunter3');
}
