import { AsyncLocalStorage } from 'node:async_hooks';
import type { DestinationStream, Logger } from 'pino';
import pino from 'pino';
import pretty from 'pino-pretty';
import type { LogLevel } from './config';
import { redact } from './config';

export type { Logger };

/**
 * Fields named like secrets are replaced at the top of a line and in the objects one may carry (an
 * error's own properties, headers, a configuration): a second line of defence, since no log call
 * passes a body, a header or the settings in the first place. Named paths, not wildcards: a `*.`
 * path costs about 10 µs on every line.
 */
const SECRET_FIELDS = ['password', 'token', 'access_token', 'accessToken', 'authorization', 'cookie', 'secretKey', 'apiKey'];
const REDACTED_PATHS = ['', 'err.', 'headers.', 'config.'].flatMap((parent) => SECRET_FIELDS.map((field) => parent + field));

/** pino's error serializer, with any connection URL's password in the message or stack hidden (drivers quote them). */
function serializeError(error: unknown): unknown {
  const serialized = pino.stdSerializers.err(error as Error) as unknown;
  if (typeof serialized !== 'object' || serialized === null || !('message' in serialized)) return serialized;
  const { message, stack } = serialized as { message: unknown; stack?: unknown };
  return {
    ...serialized,
    message: typeof message === 'string' ? redact(message) : message,
    ...(typeof stack === 'string' ? { stack: redact(stack) } : {}),
  };
}

/** The HTTP request being answered, for every line logged while answering it. */
const requestScope = new AsyncLocalStorage<{ requestId: string }>();

/**
 * Runs `handle` as the answer to one HTTP request: every line logged meanwhile, wherever from
 * (a REST route, Yoga's error report), carries `requestId`.
 * @example inRequest(crypto.randomUUID(), () => route(request))
 */
export function inRequest<T>(requestId: string, handle: () => T): T {
  return requestScope.run({ requestId }, handle);
}

/** Runs `work` that outlives the request starting it (a bot answer), so its lines carry no request id of its own. */
export function outsideRequest<T>(work: () => T): T {
  return requestScope.exit(work);
}

export interface LoggerOptions {
  level: LogLevel;
  /** Where the JSON lines go; by default the process's output (see `processOutput`). Tests pass an array's writer. */
  destination?: DestinationStream;
}

/**
 * A logger writing one JSON object per line: `level` as a word, an ISO `time`, `pid`, `hostname`,
 * `requestId` while answering a request, then the line's own fields and `msg`. Child loggers add a
 * `component`.
 * @example createLogger({ level: 'info' }).child({ component: 'bot' }).info({ chatId: 1 }, 'bot answer')
 */
export function createLogger({ level, destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // A fresh object each line: pino merges the line's own fields into what the mixin returns.
      mixin: () => {
        const scope = requestScope.getStore();
        return scope ? { requestId: scope.requestId } : {};
      },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError },
    },
    destination ?? processOutput(),
  );
}

let output: DestinationStream | undefined;

/**
 * stdout for the lines that report, stderr for warnings and errors (as a shell and a supervisor
 * expect), human-readable when stdout is a terminal. Made once per process: it wraps the process's
 * own file descriptors, which outlive any app. Writes are synchronous, so a line logged just
 * before `process.exit` is out, and nothing is buffered that would need flushing or releasing.
 * pino-pretty runs as an in-process stream, not a worker transport (fragile under Bun).
 */
function processOutput(): DestinationStream {
  const stream = (fd: 1 | 2): DestinationStream =>
    process.stdout.isTTY
      ? pretty({ destination: fd, sync: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
      : pino.destination({ dest: fd, sync: true });
  output ??= pino.multistream(
    [
      { level: 'trace', stream: stream(1) },
      { level: 'warn', stream: stream(2) },
    ],
    { dedupe: true },
  );
  return output;
}
