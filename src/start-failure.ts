import { ConfigError, redact } from './config';
import { createLogger } from './log';

/** How `npm start` and `npm run migrate` end when they cannot start: a configuration error says its fix and exits 78. */
export function exitOnStartFailure(error: unknown): never {
  // LOG_LEVEL itself may be what is wrong: a failed start is always reported.
  const log = createLogger({ level: 'info' });
  if (error instanceof ConfigError) {
    log.fatal(`Configuration error: ${redact(error.message)}`);
    process.exit(78);
  }
  // What failed may quote a connection URL: the error serializer hides its passwords.
  log.fatal({ err: error }, 'Start-up failed');
  process.exit(1);
}
