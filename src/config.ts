import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Engine } from './db/migrate';
import type { OAuthConfig } from './oauth-config';
import { oauthConfig } from './oauth-config';
import type { UploadPace } from './services/attachments/upload-pace';

/** Everything the server reads from its environment, parsed and checked once at start-up. */
export interface Config {
  port: number;
  host: string;
  production: boolean;
  /** `timeoutMs` (DATABASE_TIMEOUT_MS): how long a PostgreSQL connection or query may take before it fails (a 503), so a stalled server cannot hang requests. */
  database: { engine: Engine; url: string; timeoutMs: number };
  /** SEARCH_INDEX_DELAY_MS (SQLite): how long new messages wait to be indexed for search together (a search takes them in first). */
  searchIndexDelayMs: number;
  /** Redis for the pub/sub (and the cluster-wide bot lock) when several instances run; null for one process. */
  redisUrl: string | null;
  /** Prefixes every Redis channel and key, so deployments (or test runs) can share one Redis. */
  redisPrefix: string;
  secretKey: string;
  /** Origins allowed to call the API from a browser: '*' or a list; none by default in production. */
  cors: { origins: '*' | string[] };
  tokenExpireMinutes: number;
  gemini: { apiKey: string | undefined; model: string; baseUrl: string | undefined; timeoutMs: number };
  limits: {
    /** `/ws` messages per second per socket; 0 turns the limit off. */
    wsRatePerSecond: number;
    /** `/bot` asks per minute per user; 0 turns the limit off. */
    botPerMinute: number;
    /** Failed logins per minute per username and per client address; 0 turns the limit off. */
    loginFailuresPerMinute: number;
    /** Messages per second per user, over every transport, in bursts of up to `messageBurst`; 0 turns the limit off. */
    messagesPerSecond: number;
    messageBurst: number;
    /** Registrations per hour per client address; 0 turns the limit off. */
    registrationsPerHour: number;
    /** Provider sign-ins started per minute per client address (each stores a pending row); 0 turns the limit off. */
    oauthStartsPerMinute: number;
    /** Password hashes and checks running at once in this process, and how many may wait for a turn. */
    passwordHashConcurrency: number;
    passwordHashQueue: number;
    /** Open `/ws` and graphql-ws sockets per user in one process; 0 turns the cap off. */
    socketsPerUser: number;
  };
  bot: {
    /** The name bot messages show as their author (`username`); the bot has no user account. */
    name: string;
    contextMessages: number;
    contextChars: number;
    /** BOT_CONTEXT_BYTES: the files (images, audio, PDFs) sent to the model with one ask, newest first, at most this many bytes. */
    contextBytes: number;
    maxConcurrentCalls: number;
    /** BOT_MODELS: the models a room's assistant may use (GEMINI_MODEL, the built-in bot's, by default). */
    models: string[];
    /** BOT_ROOM_MONTHLY_TOKENS: tokens a room may use in a calendar month (UTC); 0 for no budget. */
    roomMonthlyTokens: number;
  };
  /** On SIGTERM, how long running bot answers get to finish; the process is gone within a second after. */
  shutdownGraceMs: number;
  /** How long a user stays online after their last socket closed, so a reload does not flap. */
  presenceGraceMs: number;
  /** The least severe log lines written (LOG_LEVEL); `silent` writes none. */
  logLevel: LogLevel;
  /** `GET /metrics` (Prometheus): served or not, and the bearer token it requires (null: none). */
  metrics: { enabled: boolean; token: string | null };
  /** Sign-in with Google (or any OpenID Connect provider) and GitHub: off unless configured. */
  oauth: OAuthConfig;
  /** Outgoing webhooks: where they may go, how long one attempt and all of a delivery's retries may take. */
  webhooks: {
    /** WEBHOOK_ALLOW_PRIVATE=1: loopback, private and link-local addresses (and plain http) are allowed; for tests and private networks. */
    allowPrivate: boolean;
    /** WEBHOOK_TIMEOUT_MS: one attempt, connection to answer. */
    timeoutMs: number;
    /** WEBHOOK_RETRY_WINDOW_MS: how long after its event a delivery is retried before it is given up and its webhook disabled. */
    retryWindowMs: number;
    /** WEBHOOK_RETRY_BASE_MS: the first retry's delay; each next one doubles it (with jitter), up to an hour. */
    retryBaseMs: number;
    /** WEBHOOK_POLL_MS: how often an instance looks for deliveries due (new ones written here are sent at once). */
    pollMs: number;
  };
  /**
   * Attachments and avatars: MAX_UPLOAD_BYTES per file, and where files live: a folder (UPLOAD_DIR;
   * by default `uploads` beside the SQLite file), or, on PostgreSQL without UPLOAD_DIR, the database
   * itself, which every instance shares.
   */
  uploads: {
    maxBytes: number;
    store: { kind: 'disk'; dir: string } | { kind: 'database' };
    /** MAX_CONCURRENT_UPLOADS: upload bodies read at once in this process; the others wait their turn. */
    concurrency: number;
    /** UPLOAD_QUEUE: uploads waiting for a turn; one more is refused with 503 at once. */
    queue: number;
    /** UPLOAD_QUEUE_WAIT_MS: how long an upload may wait for a turn before it is refused with 503. */
    queueWaitMs: number;
    /** UPLOAD_MIN_BYTES_PER_SECOND (0: off) over windows of UPLOAD_MIN_RATE_WINDOW_MS: a body slower than this loses its turn with 408. */
    pace: UploadPace;
  };
  /** What start-up should warn about once it can log (a generated SECRET_KEY). */
  startupWarnings: string[];
}

/** pino's levels, most severe first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A configuration problem: start-up stops and prints this message, which says the fix. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

const MIN_PRODUCTION_SECRET_BYTES = 32;
/** An hour: longer would only hide that people left (and timers cannot wait past 24.8 days anyway). */
const MAX_PRESENCE_GRACE_MS = 3_600_000;

export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV === 'production';
  const database = { ...parseDatabaseUrl(env.DATABASE_URL ?? 'file:./gemini_coop.db'), timeoutMs: integer(env, 'DATABASE_TIMEOUT_MS', 10_000, { min: 1 }) };
  const startupWarnings: string[] = [];
  const model = env.GEMINI_MODEL || 'gemini-2.5-flash';
  return {
    port: integer(env, 'PORT', 8000, { min: 0, max: 65535 }),
    host: env.HOST || '0.0.0.0',
    production,
    database,
    searchIndexDelayMs: integer(env, 'SEARCH_INDEX_DELAY_MS', 100, { min: 1 }),
    redisUrl: redisUrl(env.REDIS_URL),
    redisPrefix: env.REDIS_PREFIX ?? 'gemini-coop:',
    secretKey: secretKey(env.SECRET_KEY, production, database, startupWarnings),
    cors: { origins: corsOrigins(env.CORS_ORIGINS, production) },
    tokenExpireMinutes: integer(env, 'TOKEN_EXPIRE_MINUTES', 1440, { min: 1 }),
    gemini: {
      apiKey: env.GEMINI_API_KEY || undefined,
      model,
      baseUrl: env.GEMINI_BASE_URL || undefined,
      timeoutMs: integer(env, 'GEMINI_TIMEOUT_MS', 60_000, { min: 1 }),
    },
    limits: {
      wsRatePerSecond: integer(env, 'WS_RATE_LIMIT', 20, { min: 0 }),
      botPerMinute: integer(env, 'BOT_RATE_LIMIT', 10, { min: 0 }),
      loginFailuresPerMinute: integer(env, 'LOGIN_RATE_LIMIT', 10, { min: 0 }),
      messagesPerSecond: integer(env, 'MESSAGE_RATE_LIMIT', 5, { min: 0 }),
      messageBurst: integer(env, 'MESSAGE_BURST', 20, { min: 1 }),
      registrationsPerHour: integer(env, 'REGISTER_RATE_LIMIT', 20, { min: 0 }),
      oauthStartsPerMinute: integer(env, 'OAUTH_START_RATE_LIMIT', 30, { min: 0 }),
      passwordHashConcurrency: integer(env, 'PASSWORD_HASH_CONCURRENCY', availableParallelism(), { min: 1 }),
      passwordHashQueue: integer(env, 'PASSWORD_HASH_QUEUE', 100, { min: 0 }),
      socketsPerUser: integer(env, 'MAX_SOCKETS_PER_USER', 20, { min: 0 }),
    },
    bot: {
      name: botName(env.BOT_NAME),
      contextMessages: integer(env, 'BOT_CONTEXT_MESSAGES', 50, { min: 1 }),
      contextChars: integer(env, 'BOT_CONTEXT_CHARS', 24_000, { min: 1 }),
      // Gemini takes at most 20 MB of inline data per request, in base64 (4/3 of the bytes).
      contextBytes: integer(env, 'BOT_CONTEXT_BYTES', 8 * 1024 * 1024, { min: 0, max: 14 * 1024 * 1024 }),
      maxConcurrentCalls: integer(env, 'BOT_MAX_CONCURRENT_CALLS', 8, { min: 1 }),
      models: botModels(env.BOT_MODELS, model),
      roomMonthlyTokens: integer(env, 'BOT_ROOM_MONTHLY_TOKENS', 0, { min: 0 }),
    },
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 10_000, { min: 0 }),
    presenceGraceMs: integer(env, 'PRESENCE_GRACE_MS', 5_000, { min: 0, max: MAX_PRESENCE_GRACE_MS }),
    logLevel: logLevel(env.LOG_LEVEL),
    metrics: metricsSettings(env.METRICS, env.METRICS_TOKEN, production),
    oauth: oauthConfig(env, production),
    webhooks: {
      allowPrivate: flag(env, 'WEBHOOK_ALLOW_PRIVATE'),
      timeoutMs: integer(env, 'WEBHOOK_TIMEOUT_MS', 5_000, { min: 1, max: 60_000 }),
      retryWindowMs: integer(env, 'WEBHOOK_RETRY_WINDOW_MS', 86_400_000, { min: 0 }),
      retryBaseMs: integer(env, 'WEBHOOK_RETRY_BASE_MS', 1_000, { min: 1 }),
      pollMs: integer(env, 'WEBHOOK_POLL_MS', 1_000, { min: 1 }),
    },
    uploads: {
      maxBytes: integer(env, 'MAX_UPLOAD_BYTES', DEFAULT_MAX_UPLOAD_BYTES, { min: 1, max: MAX_UPLOAD_LIMIT }),
      store: fileStore(env.UPLOAD_DIR, database),
      concurrency: integer(env, 'MAX_CONCURRENT_UPLOADS', DEFAULT_MAX_CONCURRENT_UPLOADS, { min: 1 }),
      queue: integer(env, 'UPLOAD_QUEUE', 32, { min: 0 }),
      queueWaitMs: uploadQueueWait(env.UPLOAD_QUEUE_WAIT_MS),
      pace: {
        minBytesPerSecond: integer(env, 'UPLOAD_MIN_BYTES_PER_SECOND', DEFAULT_UPLOAD_MIN_BYTES_PER_SECOND, { min: 0, max: MAX_UPLOAD_LIMIT }),
        windowMs: integer(env, 'UPLOAD_MIN_RATE_WINDOW_MS', 5_000, { min: 1, max: 60_000 }),
      },
    },
    startupWarnings,
  };
}

/** 20 MiB: a phone photo, a few minutes of voice, most PDFs. */
export const DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024;
/** 1 GiB: the server streams files, but an upload is one request and a bot turn sends files inline. */
const MAX_UPLOAD_LIMIT = 1024 * 1024 * 1024;

/**
 * Bun holds about 9 MB of a body it reads for a slower consumer, and under 2 MB of one not read yet:
 * four read at once keep a burst of uploads to a few tens of MB and still fill a disk.
 */
export const DEFAULT_MAX_CONCURRENT_UPLOADS = 4;

/**
 * 16 KiB/s (128 kbit/s): well under what a phone sends on 3G, far over a trickle of a byte at a time
 * that would hold an upload slot for as long as its sender likes (Bun's idle timeout never fires
 * while bytes keep coming).
 */
const DEFAULT_UPLOAD_MIN_BYTES_PER_SECOND = 16 * 1024;

/** Bun closes a request it has not read for 10 s (Bun.serve's `idleTimeout`): a waiting upload must get its turn, or its 503, before. */
const MAX_UPLOAD_QUEUE_WAIT_MS = 9_000;

function uploadQueueWait(raw: string | undefined): number {
  const waitMs = integer({ UPLOAD_QUEUE_WAIT_MS: raw }, 'UPLOAD_QUEUE_WAIT_MS', 5_000, { min: 1 });
  if (waitMs > MAX_UPLOAD_QUEUE_WAIT_MS) {
    throw new ConfigError(
      `UPLOAD_QUEUE_WAIT_MS=${raw} is too long: the server drops a request it has not read for 10 s, so set it to at most ${MAX_UPLOAD_QUEUE_WAIT_MS}, or unset it for 5000.`,
    );
  }
  return waitMs;
}

function fileStore(dir: string | undefined, database: Omit<Config['database'], 'timeoutMs'>): Config['uploads']['store'] {
  if (dir?.trim()) return { kind: 'disk', dir: resolve(dir.trim()) };
  if (database.engine === 'sqlite') return { kind: 'disk', dir: join(dirname(sqliteFilePath(database.url)), 'uploads') };
  return { kind: 'database' };
}

function logLevel(raw: string | undefined): LogLevel {
  const level = raw?.trim().toLowerCase() || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`LOG_LEVEL=${raw} is not valid: set it to one of ${LOG_LEVELS.join(', ')}, or unset it for info.`);
  }
  return level as LogLevel;
}

/**
 * Outside production `/metrics` is on, open unless METRICS_TOKEN is set. In production it is on only
 * with a token, unless METRICS=on says to serve it open (a scrape over a private network).
 */
function metricsSettings(raw: string | undefined, token: string | undefined, production: boolean): Config['metrics'] {
  const given = raw?.trim().toLowerCase() || undefined;
  if (given !== undefined && given !== 'on' && given !== 'off') {
    throw new ConfigError(
      `METRICS=${raw} is not valid: set it to on or off, or unset it (on outside production; in production, on when METRICS_TOKEN is set).`,
    );
  }
  const bearer = token?.trim() || null;
  if (bearer !== null && !/^[\x21-\x7e]+$/.test(bearer)) {
    throw new ConfigError('METRICS_TOKEN holds spaces or characters outside printable ASCII: set it to something like the output of `openssl rand -hex 32`.');
  }
  const enabled = given === undefined ? !production || bearer !== null : given === 'on';
  return { enabled, token: bearer };
}

function flag(env: Env, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === '0' || raw === 'false') return false;
  if (raw === '1' || raw === 'true') return true;
  throw new ConfigError(`${name}=${env[name]} is not valid: set it to 1 (on) or 0 (off), or unset it (off).`);
}

function integer(env: Env, name: string, fallback: number, { min, max = Number.MAX_SAFE_INTEGER }: { min: number; max?: number }) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  // Digits only: Number() alone would quietly read "0x50" as 80 and "8e3" as 8000.
  const value = /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name}=${raw} is not valid: set it to a whole number from ${min} to ${max}, or unset it for ${fallback}.`);
  }
  return value;
}

/**
 * Accepts Prisma's `file:` URLs, the original service's SQLAlchemy form (`sqlite:///./x.db`,
 * `sqlite:////abs/x.db`) and PostgreSQL URLs.
 */
export function parseDatabaseUrl(url: string): Omit<Config['database'], 'timeoutMs'> {
  if (url.startsWith('file:')) return sqliteDatabase(url);
  const sqlalchemy = /^sqlite:\/\/\/(.+)$/.exec(url);
  if (sqlalchemy) return sqliteDatabase(`file:${sqlalchemy[1]}`, url);
  if (/^postgres(ql)?:\/\//.test(url)) return { engine: 'postgres', url };
  throw new ConfigError(
    `DATABASE_URL=${redact(url)} is not supported: use file:./gemini_coop.db (or sqlite:///./gemini_coop.db) for SQLite, or postgresql://user@host:5432/db for PostgreSQL.`,
  );
}

/**
 * A SQLite database is a file that several connections open: migrations', the server's, and its workers'
 * (checkpoints, search). An in-memory database would be a different, empty one on each, and the driver
 * takes everything after `file:` as the file's name, parameters included.
 */
function sqliteDatabase(url: string, given = url): Omit<Config['database'], 'timeoutMs'> {
  if (url.includes(':memory:') || url.includes('?')) {
    throw new ConfigError(
      `DATABASE_URL=${redact(given)} is not supported: SQLite needs a file path without parameters or :memory:, such as file:./gemini_coop.db.`,
    );
  }
  return { engine: 'sqlite', url };
}

const MAX_BOT_NAME_LENGTH = 64;

function botName(raw: string | undefined): string {
  const name = raw?.trim() || 'gemini-ai';
  if (name.length > MAX_BOT_NAME_LENGTH) {
    throw new ConfigError(`BOT_NAME is ${name.length} characters long: set a name of at most ${MAX_BOT_NAME_LENGTH}, or unset it for gemini-ai.`);
  }
  return name;
}

/** A comma-separated list of model ids; GEMINI_MODEL alone when unset. */
function botModels(raw: string | undefined, fallback: string): string[] {
  if (raw === undefined || raw.trim() === '') return [fallback];
  const models = [
    ...new Set(
      raw
        .split(',')
        .map((model) => model.trim())
        .filter(Boolean),
    ),
  ];
  for (const model of models) {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(model)) {
      throw new ConfigError(
        `BOT_MODELS has "${model}": list Gemini model ids such as gemini-2.5-flash,gemini-2.5-pro, comma-separated, or unset it for GEMINI_MODEL.`,
      );
    }
  }
  return models;
}

function corsOrigins(raw: string | undefined, production: boolean): '*' | string[] {
  if (raw === undefined) return production ? [] : '*';
  if (raw.trim() === '*') return '*';
  const origins = raw
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  for (const origin of origins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(`CORS_ORIGINS has "${origin}": list origins like https://chat.example.com (scheme and host, no path), comma-separated, or *.`);
    }
  }
  return origins;
}

function redisUrl(url: string | undefined): string | null {
  if (!url) return null;
  if (!/^rediss?:\/\//.test(url)) {
    throw new ConfigError(`REDIS_URL=${redact(url)} is not supported: use redis://host:6379 (or rediss:// for TLS), or unset it to run as one process.`);
  }
  return url;
}

export function sqliteFilePath(url: string): string {
  return resolve(url.slice('file:'.length));
}

/** The file of a SQLite database, which other threads open too; null on PostgreSQL. */
export function sharedSqliteFile({ engine, url }: Pick<Config['database'], 'engine' | 'url'>): string | null {
  return engine === 'sqlite' ? sqliteFilePath(url) : null;
}

function secretKey(given: string | undefined, production: boolean, database: Config['database'], warnings: string[]): string {
  if (given) {
    if (production && Buffer.byteLength(given) < MIN_PRODUCTION_SECRET_BYTES) {
      throw new ConfigError(
        `SECRET_KEY is ${Buffer.byteLength(given)} bytes; production needs at least ${MIN_PRODUCTION_SECRET_BYTES}. Generate one with: openssl rand -hex 32`,
      );
    }
    return given;
  }
  if (production) {
    throw new ConfigError('SECRET_KEY is not set. In production it is required: set SECRET_KEY to the output of `openssl rand -hex 32`.');
  }
  // Outside production a generated key is kept beside the database, so tokens survive a restart.
  const keyFile = database.engine === 'sqlite' ? `${sqliteFilePath(database.url)}.secret` : resolve('.gemini_coop.secret');
  if (existsSync(keyFile)) {
    const kept = readFileSync(keyFile, 'utf8').trim();
    if (!kept) throw new ConfigError(`The key file ${keyFile} is empty: delete it (a new key is generated on start) or set SECRET_KEY.`);
    return kept;
  }
  const generated = randomBytes(32).toString('hex');
  writeFileSync(keyFile, generated, { mode: 0o600 });
  warnings.push(`SECRET_KEY is not set: generated one and kept it in ${keyFile}. Set SECRET_KEY before going to production.`);
  return generated;
}

// `scheme://user:password@` and `scheme://:password@` (Redis' form). The password runs to the last
// `@` of the word, so one holding a raw `@` or `/` is hidden whole (at worst with some of the host).
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):\S*@/gi;
// `?password=…`, `&sslpassword=…` and the like: any query parameter whose name says it is a secret.
const SECRET_PARAMETER = /([?&][^\s=&#]*(?:pass|pwd|secret|token|key)[^\s=&#]*=)[^\s&#]*/gi;

/**
 * `text` with every URL's password and secret query parameters replaced by `***`, safe for a log
 * line or an error message. Works on a bare URL or on any message that quotes one.
 * @example redact('redis://:hunter2@cache:6379') // 'redis://:***@cache:6379'
 */
export const redact = (text: string) => text.replace(URL_PASSWORD, '$1:***@').replace(SECRET_PARAMETER, '$1***');
