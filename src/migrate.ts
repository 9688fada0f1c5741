import { loadConfig } from './config';
import { migrateDatabase } from './db/client';
import { exitOnStartFailure } from './start-failure';

/**
 * `npm run migrate`: applies the committed migrations to DATABASE_URL, then exits. `npm start` runs
 * it first in a child process; a deployment may also run it as its own step before starting.
 */
async function main() {
  await migrateDatabase(loadConfig().database);
}

main().catch(exitOnStartFailure);
