import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseDatabaseUrl } from '../src/config';
import { configError } from './support/config-errors';

/** `loadConfig(env)`: the environment, parsed and checked once at start-up. */

// A key for tests that are not about the key, so nothing is generated in the working directory.
const SECRET = 'config-test-secret-key-that-is-long-enough-0123';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gemini-coop-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('defaults', () => {
  test('an environment with only a secret gives the documented defaults', () => {
    const config = loadConfig({ SECRET_KEY: SECRET });
    expect(config.port).toBe(8000);
    expect(config.host).toBe('0.0.0.0');
    expect(config.production).toBe(false);
    expect(config.database).toEqual({ engine: 'sqlite', url: 'file:./gemini_coop.db', timeoutMs: 10_000 });
    expect(config.tokenExpireMinutes).toBe(1440);
    expect(config.gemini.model).toBe('gemini-2.5-flash');
    expect(config.secretKey).toBe(SECRET);
  });

  test('a missing GEMINI_API_KEY is fine: the server starts without it', () => {
    const config = loadConfig({ SECRET_KEY: SECRET });
    expect(config.gemini.apiKey).toBeUndefined();
    expect(loadConfig({ SECRET_KEY: SECRET, GEMINI_API_KEY: '' }).gemini.apiKey).toBeUndefined();
    expect(loadConfig({ SECRET_KEY: SECRET, GEMINI_API_KEY: 'abc123' }).gemini.apiKey).toBe('abc123');
  });

  test('BOT_NAME names bot messages: gemini-ai by default (blank too), trimmed, at most 64 characters', () => {
    expect(loadConfig({ SECRET_KEY: SECRET }).bot.name).toBe('gemini-ai');
    expect(loadConfig({ SECRET_KEY: SECRET, BOT_NAME: '  ' }).bot.name).toBe('gemini-ai');
    expect(loadConfig({ SECRET_KEY: SECRET, BOT_NAME: ' Helper ' }).bot.name).toBe('Helper');
    expect(loadConfig({ SECRET_KEY: SECRET, BOT_NAME: 'b'.repeat(64) }).bot.name).toBe('b'.repeat(64));
    expect(configError(() => loadConfig({ SECRET_KEY: SECRET, BOT_NAME: 'b'.repeat(65) })).message).toContain('BOT_NAME');
  });

  test('BOT_MODELS is GEMINI_MODEL alone by default, else a comma-separated list of model ids; BOT_ROOM_MONTHLY_TOKENS is off by default', () => {
    expect(loadConfig({ SECRET_KEY: SECRET, GEMINI_MODEL: 'm-one' }).bot).toMatchObject({ models: ['m-one'], roomMonthlyTokens: 0 });
    expect(loadConfig({ SECRET_KEY: SECRET, BOT_MODELS: ' a-1, b.2 ,a-1' }).bot.models).toEqual(['a-1', 'b.2']);
    expect(loadConfig({ SECRET_KEY: SECRET, BOT_ROOM_MONTHLY_TOKENS: '5000' }).bot.roomMonthlyTokens).toBe(5000);
    expect(configError(() => loadConfig({ SECRET_KEY: SECRET, BOT_MODELS: 'good,bad model' })).message).toContain('BOT_MODELS has "bad model"');
    expect(configError(() => loadConfig({ SECRET_KEY: SECRET, BOT_ROOM_MONTHLY_TOKENS: '-1' })).message).toContain('BOT_ROOM_MONTHLY_TOKENS');
  });

  test('empty integer settings fall back to their defaults', () => {
    const config = loadConfig({ SECRET_KEY: SECRET, PORT: '', TOKEN_EXPIRE_MINUTES: '' });
    expect(config.port).toBe(8000);
    expect(config.tokenExpireMinutes).toBe(1440);
  });
});

describe('settings from the environment', () => {
  test('PORT, HOST, TOKEN_EXPIRE_MINUTES, GEMINI_MODEL and the limits are read', () => {
    const config = loadConfig({
      SECRET_KEY: SECRET,
      PORT: '9001',
      HOST: '127.0.0.1',
      TOKEN_EXPIRE_MINUTES: '30',
      GEMINI_MODEL: 'gemini-2.5-pro',
      LOGIN_RATE_LIMIT: '0',
      WS_RATE_LIMIT: '5',
    });
    expect(config.port).toBe(9001);
    expect(config.host).toBe('127.0.0.1');
    expect(config.tokenExpireMinutes).toBe(30);
    expect(config.gemini.model).toBe('gemini-2.5-pro');
    expect(config.limits.loginFailuresPerMinute).toBe(0);
    expect(config.limits.wsRatePerSecond).toBe(5);
  });

  test('NODE_ENV=production marks the config as production', () => {
    expect(loadConfig({ SECRET_KEY: SECRET, NODE_ENV: 'production' }).production).toBe(true);
    expect(loadConfig({ SECRET_KEY: SECRET, NODE_ENV: 'development' }).production).toBe(false);
  });
});

describe('DATABASE_URL', () => {
  test("Prisma's file: URL is SQLite, unchanged", () => {
    expect(loadConfig({ SECRET_KEY: SECRET, DATABASE_URL: 'file:./data/chat.db' }).database).toMatchObject({ engine: 'sqlite', url: 'file:./data/chat.db' });
  });

  test("the original's sqlite:///./gemini_coop.db maps to file:./gemini_coop.db", () => {
    expect(loadConfig({ SECRET_KEY: SECRET, DATABASE_URL: 'sqlite:///./gemini_coop.db' }).database).toMatchObject({
      engine: 'sqlite',
      url: 'file:./gemini_coop.db',
    });
  });

  test('an absolute SQLAlchemy path (four slashes) stays absolute', () => {
    expect(parseDatabaseUrl('sqlite:////var/lib/coop/chat.db')).toEqual({ engine: 'sqlite', url: 'file:/var/lib/coop/chat.db' });
  });

  test('postgresql:// and postgres:// URLs select PostgreSQL and are kept whole', () => {
    const url = 'postgresql://coop:pw@db.internal:5432/coop?sslmode=require';
    expect(loadConfig({ SECRET_KEY: SECRET, DATABASE_URL: url }).database).toMatchObject({ engine: 'postgres', url });
    expect(parseDatabaseUrl('postgres://coop@localhost/coop')).toEqual({ engine: 'postgres', url: 'postgres://coop@localhost/coop' });
  });

  test('an unsupported URL is a ConfigError that names the value and the accepted forms', () => {
    for (const url of ['mysql://root@localhost/coop', 'gemini_coop.db', 'sqlite://', 'http://example.com/db']) {
      const error = configError(() => loadConfig({ SECRET_KEY: SECRET, DATABASE_URL: url }));
      expect(error.message).toContain('DATABASE_URL');
      expect(error.message).toContain(url);
      expect(error.message).toContain('file:');
      expect(error.message).toContain('postgresql://');
    }
  });

  test('an in-memory SQLite database, or a SQLite URL with parameters, is a ConfigError that asks for a file path', () => {
    // Each connection (migrations, the server, its checkpoint and search workers) would open a database
    // of its own; and the driver would take the parameters as part of the file's name.
    for (const url of ['file::memory:', 'sqlite:///:memory:', 'file:memdb?mode=memory&cache=shared', 'file:./chat.db?connection_limit=1']) {
      const error = configError(() => loadConfig({ SECRET_KEY: SECRET, DATABASE_URL: url }));
      expect(error.message).toContain(url);
      expect(error.message).toContain('file:./gemini_coop.db');
    }
  });
});

describe('integer settings', () => {
  const bad: [name: string, value: string][] = [
    ['PORT', 'abc'],
    ['PORT', '80.5'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '0x50'],
    ['PORT', '8e3'],
    ['TOKEN_EXPIRE_MINUTES', '0'],
    ['TOKEN_EXPIRE_MINUTES', 'forever'],
    ['LOGIN_RATE_LIMIT', '-3'],
    ['WS_RATE_LIMIT', 'ten'],
    ['DATABASE_TIMEOUT_MS', '0'],
    ['PRESENCE_GRACE_MS', '5s'],
    ['PRESENCE_GRACE_MS', '-1'],
    ['PRESENCE_GRACE_MS', '3600001'],
  ];
  for (const [name, value] of bad) {
    test(`${name}=${value} is a ConfigError saying what to set`, () => {
      const error = configError(() => loadConfig({ SECRET_KEY: SECRET, [name]: value }));
      expect(error.message).toContain(`${name}=${value}`);
      expect(error.message).toContain('whole number');
      expect(error.message).toMatch(/set it to|unset it/);
    });
  }

  test('the bounds themselves are accepted', () => {
    expect(loadConfig({ SECRET_KEY: SECRET, PORT: '65535' }).port).toBe(65535);
    expect(loadConfig({ SECRET_KEY: SECRET, PORT: '0' }).port).toBe(0);
    expect(loadConfig({ SECRET_KEY: SECRET, TOKEN_EXPIRE_MINUTES: '1' }).tokenExpireMinutes).toBe(1);
    expect(loadConfig({ SECRET_KEY: SECRET, PRESENCE_GRACE_MS: '0' }).presenceGraceMs).toBe(0);
    expect(loadConfig({ SECRET_KEY: SECRET, PRESENCE_GRACE_MS: '3600000' }).presenceGraceMs).toBe(3_600_000);
    expect(loadConfig({ SECRET_KEY: SECRET }).presenceGraceMs).toBe(5_000);
  });
});

describe('SECRET_KEY in production', () => {
  test('a missing key is a ConfigError that says how to make one, and nothing is written', () => {
    const database = join(dir, 'prod-missing.db');
    const error = configError(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL: `file:${database}` }));
    expect(error.message).toContain('SECRET_KEY');
    expect(error.message).toContain('openssl rand -hex 32');
    expect(existsSync(`${database}.secret`)).toBe(false);
  });

  test('an empty key counts as missing', () => {
    configError(() => loadConfig({ NODE_ENV: 'production', SECRET_KEY: '', DATABASE_URL: `file:${join(dir, 'prod-empty.db')}` }));
  });

  test('a key shorter than 32 bytes is a ConfigError that gives the length needed', () => {
    const error = configError(() => loadConfig({ NODE_ENV: 'production', SECRET_KEY: 'x'.repeat(31) }));
    expect(error.message).toContain('SECRET_KEY');
    expect(error.message).toContain('32');
    expect(error.message).toContain('openssl rand -hex 32');
  });

  test('a key of 32 bytes or more is used as given', () => {
    const key = 'k'.repeat(32);
    expect(loadConfig({ NODE_ENV: 'production', SECRET_KEY: key }).secretKey).toBe(key);
  });

  test('outside production a short key is tolerated', () => {
    expect(loadConfig({ SECRET_KEY: 'short' }).secretKey).toBe('short');
  });
});

describe('SECRET_KEY outside production', () => {
  test('a missing key is generated once, kept beside the database, and reused', () => {
    const database = join(dir, 'dev.db');
    const env = { DATABASE_URL: `file:${database}` };
    const first = loadConfig(env);
    const keyFile = `${database}.secret`;
    expect(existsSync(keyFile)).toBe(true);
    expect(first.secretKey.length).toBeGreaterThanOrEqual(32);
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(first.secretKey);
    // Start-up logs it once a logger exists (LOG_LEVEL is part of the same configuration).
    expect(first.startupWarnings.join('\n')).toContain(keyFile);
    expect(statSync(keyFile).mode & 0o077).toBe(0);

    const second = loadConfig(env);
    expect(second.secretKey).toBe(first.secretKey);
    expect(second.startupWarnings).toEqual([]);
  });

  test("the original's sqlite:/// URL keeps its key beside the same file", () => {
    const database = join(dir, 'seed.db');
    const config = loadConfig({ DATABASE_URL: `sqlite:///${database}` });
    expect(readFileSync(`${database}.secret`, 'utf8').trim()).toBe(config.secretKey);
  });

  test('different databases get different keys', () => {
    const a = loadConfig({ DATABASE_URL: `file:${join(dir, 'a.db')}` }).secretKey;
    const b = loadConfig({ DATABASE_URL: `file:${join(dir, 'b.db')}` }).secretKey;
    expect(a).not.toBe(b);
  });

  test('an existing key file is read, not replaced', () => {
    const database = join(dir, 'kept.db');
    writeFileSync(`${database}.secret`, 'a-key-someone-kept-from-before\n');
    expect(loadConfig({ DATABASE_URL: `file:${database}` }).secretKey).toBe('a-key-someone-kept-from-before');
    expect(readFileSync(`${database}.secret`, 'utf8')).toBe('a-key-someone-kept-from-before\n');
  });

  test('an empty key file is a ConfigError that says to delete it or set SECRET_KEY, and it is left as it was', () => {
    const database = join(dir, 'emptied.db');
    writeFileSync(`${database}.secret`, ' \n');
    const error = configError(() => loadConfig({ DATABASE_URL: `file:${database}` }));
    expect(error.message).toContain(`${database}.secret is empty`);
    expect(error.message).toContain('SECRET_KEY');
    expect(readFileSync(`${database}.secret`, 'utf8')).toBe(' \n');
  });

  test('a given key wins over a generated one and writes nothing', () => {
    const database = join(dir, 'given.db');
    expect(loadConfig({ DATABASE_URL: `file:${database}`, SECRET_KEY: SECRET }).secretKey).toBe(SECRET);
    expect(existsSync(`${database}.secret`)).toBe(false);
  });
});

describe('LOG_LEVEL', () => {
  test("info by default; pino's levels are read, in any case", () => {
    expect(loadConfig({ SECRET_KEY: SECRET }).logLevel).toBe('info');
    expect(loadConfig({ SECRET_KEY: SECRET, LOG_LEVEL: 'WARN' }).logLevel).toBe('warn');
    expect(loadConfig({ SECRET_KEY: SECRET, LOG_LEVEL: 'silent' }).logLevel).toBe('silent');
  });

  test('an unknown level is a ConfigError listing the levels', () => {
    const error = configError(() => loadConfig({ SECRET_KEY: SECRET, LOG_LEVEL: 'verbose' }));
    expect(error.message).toContain('LOG_LEVEL=verbose');
    expect(error.message).toContain('fatal, error, warn, info, debug, trace, silent');
  });
});

describe('METRICS and METRICS_TOKEN', () => {
  test('outside production /metrics is on, open unless a token is set', () => {
    expect(loadConfig({ SECRET_KEY: SECRET }).metrics).toEqual({ enabled: true, token: null });
    expect(loadConfig({ SECRET_KEY: SECRET, METRICS_TOKEN: 'scrape-me' }).metrics).toEqual({ enabled: true, token: 'scrape-me' });
    expect(loadConfig({ SECRET_KEY: SECRET, METRICS: 'off', METRICS_TOKEN: 'scrape-me' }).metrics.enabled).toBe(false);
  });

  test('in production it is on only with a token, or when METRICS=on asks for it open', () => {
    const production = { SECRET_KEY: SECRET, NODE_ENV: 'production' };
    expect(loadConfig(production).metrics).toEqual({ enabled: false, token: null });
    expect(loadConfig({ ...production, METRICS_TOKEN: 'scrape-me' }).metrics).toEqual({ enabled: true, token: 'scrape-me' });
    expect(loadConfig({ ...production, METRICS: 'on' }).metrics).toEqual({ enabled: true, token: null });
  });

  test('anything but on or off, or a token a header cannot carry, is a ConfigError saying what to set', () => {
    expect(configError(() => loadConfig({ SECRET_KEY: SECRET, METRICS: 'yes' })).message).toContain('METRICS=yes is not valid: set it to on or off');
    expect(configError(() => loadConfig({ SECRET_KEY: SECRET, METRICS_TOKEN: 'two words' })).message).toContain('METRICS_TOKEN');
  });
});
