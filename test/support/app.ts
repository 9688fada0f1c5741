import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { App, AppOptions } from '../../src/app';
import { createApp } from '../../src/app';
import type { Config } from '../../src/config';
import { loadConfig } from '../../src/config';

/**
 * A database of its own for one test app: a temporary SQLite file by default, or, when
 * TEST_DATABASE_URL names a PostgreSQL server, a fresh database there (dropped at cleanup).
 */
export async function createTestDatabase(dir: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const server = process.env.TEST_DATABASE_URL;
  if (!server) return { url: `file:${join(dir, 'test.db')}`, drop: async () => {} };
  const name = `gemini_coop_test_${process.pid}_${crypto.randomUUID().slice(0, 8)}`;
  const admin = new Bun.SQL(server);
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** Settings that put a test app on Redis when TEST_REDIS_URL is set, under a prefix of its own. */
export function testRedisEnv(): Record<string, string> {
  const redis = process.env.TEST_REDIS_URL;
  return redis ? { REDIS_URL: redis, REDIS_PREFIX: `gemini-coop-test:${crypto.randomUUID()}:` } : {};
}

/**
 * A whole app on its own database, configured as a user would through the environment
 * (`env` overrides). Runs on SQLite, or on PostgreSQL + Redis when TEST_DATABASE_URL and
 * TEST_REDIS_URL are set. Call `cleanup()` in afterAll.
 */
/** Every rate limit off: a test that is about a limit turns that one on. */
export const RATE_LIMITS_OFF = {
  WS_RATE_LIMIT: '0',
  BOT_RATE_LIMIT: '0',
  LOGIN_RATE_LIMIT: '0',
  MESSAGE_RATE_LIMIT: '0',
  REGISTER_RATE_LIMIT: '0',
  OAUTH_START_RATE_LIMIT: '0',
} as const;

export async function createTestApp(env: Record<string, string> = {}, options: AppOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-test-'));
  const database = await createTestDatabase(dir);
  const config: Config = loadConfig({
    DATABASE_URL: database.url,
    ...testRedisEnv(),
    SECRET_KEY: 'test-secret-key-that-is-long-enough-0123456789',
    ...RATE_LIMITS_OFF,
    // Quiet: a test that reads the log passes its own (`captureLogs`) as `options.log`.
    LOG_LEVEL: 'silent',
    // A test that counts SQL counts only what it caused: the webhook worker's poll, or search taking in
    // the messages just stored, would land in its window now and then. Webhooks still go at once, since
    // every write wakes the worker, and a search takes in every message stored before it.
    ...(options.logQuery ? { WEBHOOK_POLL_MS: '3600000', SEARCH_INDEX_DELAY_MS: '3600000' } : {}),
    ...env,
  });
  const app = await createApp(config, options);
  return {
    app,
    config,
    dir,
    /** Sends a request to the app in-process; `path` is relative to http://test. */
    async request(path: string, init: RequestInit & { json?: unknown; token?: string } = {}): Promise<Response> {
      const headers = new Headers(init.headers);
      if (init.json !== undefined) headers.set('content-type', 'application/json');
      if (init.token) headers.set('authorization', `Bearer ${init.token}`);
      const body = init.json !== undefined ? JSON.stringify(init.json) : init.body;
      const response = await app.fetch(new Request(`http://test${path}`, { ...init, headers, body }));
      if (!response) throw new Error('the app upgraded an in-process request');
      return response;
    },
    /** Serves the app on a real port, for protocols that need sockets. */
    listen() {
      return Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (request, server) => app.fetch(request, server), websocket: app.websocket });
    },
    async cleanup() {
      await app.close();
      await database.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type TestApp = Awaited<ReturnType<typeof createTestApp>>;

let counter = 0;
/** Registers a fresh user through the public API and returns its id, name and token. */
export async function signUp(test: TestApp, name = `user${++counter}_${Math.random().toString(36).slice(2, 8)}`) {
  const password = 'password123';
  const registered = await test.request('/api/auth/register', {
    method: 'POST',
    json: { username: name, email: `${name}@example.com`, password },
  });
  if (registered.status !== 200) throw new Error(`register failed: ${registered.status} ${await registered.text()}`);
  const user = (await registered.json()) as { id: number; username: string };
  const login = await test.request('/api/auth/login', { method: 'POST', json: { username: name, password } });
  const { access_token } = (await login.json()) as { access_token: string };
  return { id: user.id, username: user.username, token: access_token, password };
}

export type TestUser = Awaited<ReturnType<typeof signUp>>;

export type { App };

/** The files the store holds: rows of attachments and stored bytes (a folder on SQLite, chunks on PostgreSQL). */
export async function storedFiles(t: TestApp): Promise<{ rows: number; files: number }> {
  const rows = await t.app.services.db.attachment.count();
  const store = t.config.uploads.store;
  const files = store.kind === 'disk' ? readdirSync(store.dir).length : (await t.app.services.db.fileChunk.groupBy({ by: ['key'] })).length;
  return { rows, files };
}
