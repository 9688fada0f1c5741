import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaBunSqlite } from 'prisma-adapter-bun-sqlite';
import type { Config } from '../config';
import { ConfigError, redact } from '../config';
import { PrismaClient as PostgresClient } from '../generated/postgres/client';
import { PrismaClient } from '../generated/sqlite/client';
import { applyMigrations } from './migrate';

/**
 * Both engines' generated clients expose the same model API (one models file); the services are
 * typed against the SQLite one.
 */
export type Database = PrismaClient;

/** Opens the configured database and applies any committed migration it has not seen yet. */
export async function openDatabase(database: Config['database'], options: { log?: (query: string) => void } = {}): Promise<Database> {
  const adapter =
    database.engine === 'sqlite'
      ? new PrismaBunSqlite({ url: database.url, wal: { enabled: true, synchronous: 'NORMAL', busyTimeout: 5_000 } })
      : new PrismaPg({ connectionString: database.url });
  try {
    await applyMigrations(database.engine, adapter);
  } catch (error) {
    // The driver's own message may quote the URL too: the whole line is redacted.
    throw new ConfigError(
      redact(`Cannot open the database at ${database.url}: ${(error as Error).message.split('\n')[0]}. Check DATABASE_URL and that the server is reachable.`),
    );
  }
  const Client = (database.engine === 'sqlite' ? PrismaClient : PostgresClient) as typeof PrismaClient;
  const client = new Client({ adapter: adapter as PrismaBunSqlite, log: options.log ? [{ emit: 'event', level: 'query' }] : [] });
  if (options.log) {
    const log = options.log;
    client.$on('query' as never, (event: { query: string }) => log(event.query));
  }
  return client;
}
