import type { Database as SqliteConnection } from 'bun:sqlite';
import type { SqlDriverAdapterFactory, SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { BunSqliteAdapter } from 'prisma-adapter-bun-sqlite';
import { PrismaBunSqlite } from 'prisma-adapter-bun-sqlite';
import type { Config } from '../config';
import { ConfigError, redact } from '../config';
import { PrismaClient } from '../generated/sqlite/client';
import { applyMigrations } from './migrate';

/**
 * Both engines' generated clients expose the same model API (one models file); the services are
 * typed against the SQLite one.
 */
export type Database = PrismaClient;

export interface OpenOptions {
  /** Receives each SQL statement. */
  log?: (query: string) => void;
  /** Apply pending migrations first (default); `npm start` has applied them already, in a child process (src/migrate.ts). */
  migrate?: boolean;
}

/**
 * The configured engine's driver adapter and generated client; PostgreSQL's are loaded only when it is the one.
 * `timeoutMs` bounds PostgreSQL's connection attempts and each query's wait for an answer: a query that
 * times out fails and its connection is dropped from the pool, so a stalled server neither hangs requests
 * nor poisons the pool after it recovers. Migrations run without it: building an index may take long.
 */
async function engineOf(database: Omit<Config['database'], 'timeoutMs'>, { timeoutMs }: { timeoutMs: number | undefined }) {
  if (database.engine === 'sqlite') {
    return { adapter: new PrismaBunSqlite({ url: database.url, wal: { enabled: true, synchronous: 'NORMAL', busyTimeout: 5_000 } }), Client: PrismaClient };
  }
  const [{ PrismaPg }, { PrismaClient: PostgresClient }] = await Promise.all([import('@prisma/adapter-pg'), import('../generated/postgres/client')]);
  const adapter = new PrismaPg({ connectionString: database.url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  return { adapter, Client: PostgresClient as unknown as typeof PrismaClient };
}

/** Applies every committed migration the database has not seen yet; a failure is a configuration error that says the fix. */
export async function migrateDatabase(database: Omit<Config['database'], 'timeoutMs'>): Promise<void> {
  try {
    await applyMigrations(
      database.engine,
      database.engine === 'sqlite' ? sqliteMigrationAdapter(database.url) : (await engineOf(database, { timeoutMs: undefined })).adapter,
    );
  } catch (error) {
    // The driver's own message may quote the URL too: the whole line is redacted.
    throw new ConfigError(
      redact(`Cannot open the database at ${database.url}: ${(error as Error).message.split('\n')[0]}. Check DATABASE_URL and that the server is reachable.`),
    );
  }
}

/** Opens the configured database, applying pending migrations first unless told they are applied. */
export async function openDatabase(database: Config['database'], options: OpenOptions = {}): Promise<Database> {
  if (options.migrate !== false) await migrateDatabase(database);
  const { adapter, Client } = await engineOf(database, { timeoutMs: database.timeoutMs });
  let connection: SqliteConnection | null = null;
  const client = new Client({
    adapter: adapter instanceof PrismaBunSqlite ? capturingConnection(adapter, (opened) => (connection = opened)) : adapter,
    log: options.log ? [{ emit: 'event', level: 'query' }] : [],
  });
  if (options.log) {
    const log = options.log;
    client.$on('query' as never, (event: { query: string }) => log(event.query));
  }
  if (adapter instanceof PrismaBunSqlite) {
    await client.$connect();
    sqliteConnections.set(client, connection!);
  }
  return client;
}

const sqliteConnections = new WeakMap<Database, SqliteConnection>();

/**
 * The one SQLite connection a client's queries run on (opened by `openDatabase`, never reopened), for
 * the statement too hot for Prisma (see MessageWriter); null on PostgreSQL.
 */
export function sqliteConnectionOf(client: Database): SqliteConnection | null {
  return sqliteConnections.get(client) ?? null;
}

/** The adapter factory, telling `opened` of the connection it makes. */
function capturingConnection(factory: PrismaBunSqlite, opened: (connection: SqliteConnection) => void): SqlDriverAdapterFactory {
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    async connect() {
      const connection = (await factory.connect()) as BunSqliteAdapter;
      opened(connection.getDatabase());
      return connection;
    },
  };
}

/**
 * The adapter SQLite migrations run on: its connections leave no statement behind, so closing one
 * closes it. The adapter's own WAL set-up prepares a statement that only the GC finalizes, and a
 * closed migration connection then lingered, holding the file, until the client's first connection
 * failed with "database is locked". Here WAL is set with `run`, which finalizes at once.
 */
function sqliteMigrationAdapter(url: string): SqlMigrationAwareDriverAdapterFactory {
  const factory = new PrismaBunSqlite({ url, wal: false });
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    async connect() {
      const connection = (await factory.connect()) as BunSqliteAdapter;
      connection.getDatabase().run('PRAGMA journal_mode = WAL');
      return connection;
    },
    connectToShadowDb: () => factory.connectToShadowDb(),
  };
}
