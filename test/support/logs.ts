import type { LogLevel } from '../../src/config';
import type { Logger } from '../../src/log';
import { createLogger } from '../../src/log';

/** One JSON log line as the app writes it. */
export interface LogLine {
  level: string;
  msg: string;
  component?: string;
  requestId?: string;
  err?: { message: string; stack?: string };
  [field: string]: unknown;
}

export interface CapturedLogs {
  /** Pass as `createTestApp(env, { log })`, or to a service built by hand. */
  log: Logger;
  /** Every line written so far, parsed. */
  lines: () => LogLine[];
  /** Everything written so far, exactly as written. */
  text: () => string;
}

/**
 * A logger whose output a test reads back instead of the process's output: the app's real
 * serializers and redaction, written to an array.
 * @example const logs = captureLogs('error'); ...; expect(logs.lines()).toEqual([])
 */
export function captureLogs(level: LogLevel = 'info'): CapturedLogs {
  const written: string[] = [];
  const log = createLogger({ level, destination: { write: (line: string) => void written.push(line) } });
  return {
    log,
    lines: () => written.map((line) => JSON.parse(line) as LogLine),
    text: () => written.join(''),
  };
}

/** A logger that writes nothing, for services a test builds by hand. */
export const quietLog = (): Logger => createLogger({ level: 'silent', destination: { write: () => {} } });
