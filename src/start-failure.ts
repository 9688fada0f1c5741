import { ConfigError, redact } from './config';

/** How `npm start` and `npm run migrate` end when they cannot start: a configuration error says its fix and exits 78. */
export function exitOnStartFailure(error: unknown): never {
  if (error instanceof ConfigError) {
    console.error(`Configuration error: ${redact(error.message)}`);
    process.exit(78);
  }
  // What failed may quote a connection URL: it is printed redacted, never as thrown.
  console.error(`Start-up failed: ${redact(error instanceof Error ? (error.stack ?? error.message) : String(error))}`);
  process.exit(1);
}
