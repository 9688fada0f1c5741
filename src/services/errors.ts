/**
 * The one family of domain errors. Each adapter maps `code` at its edge: GraphQL to
 * `extensions.code`, REST to `status` and `{"detail": message}`, `/ws` to an error frame.
 * Anything that is not an AppError (or a database fault, see domainError) is unexpected: logged, and
 * masked for the client.
 */
export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  /** A well-formed request the rules refuse (removing yourself, the owner leaving): the original's 400. */
  | 'BAD_REQUEST'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  /** An upload body that arrived slower than UPLOAD_MIN_BYTES_PER_SECOND. */
  | 'REQUEST_TIMEOUT'
  | 'PAYLOAD_TOO_LARGE'
  /** A file whose bytes are not on the upload allow-list, or contradict the type it claims. */
  | 'UNSUPPORTED_MEDIA_TYPE'
  /** A download's `Range` past the end of the file; `detail` is the file's size. */
  | 'RANGE_NOT_SATISFIABLE'
  | 'SERVICE_UNAVAILABLE'
  | 'SLOW_SUBSCRIBER';

const statusByCode: Record<ErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BAD_USER_INPUT: 422,
  BAD_REQUEST: 400,
  CONFLICT: 400, // the original answers duplicate usernames and emails with 400
  RATE_LIMITED: 429,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RANGE_NOT_SATISFIABLE: 416,
  SERVICE_UNAVAILABLE: 503,
  SLOW_SUBSCRIBER: 429, // only ever a subscription's last event, never an HTTP answer
};

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Structured detail for clients that want more than the message (e.g. FastAPI's 422 list). */
    readonly detail?: unknown,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  get status(): number {
    return statusByCode[this.code];
  }
}

/**
 * What the PostgreSQL driver says when the server cannot be reached, dropped the connection, or did not
 * answer within DATABASE_TIMEOUT_MS; and SQLite when another process held the file past its busy timeout.
 * Prisma passes the driver's error through.
 */
const DATABASE_FAULT = /Query read timeout|timeout exceeded when trying to connect|Connection terminated|ECONNREFUSED|ECONNRESET|database is locked/;

/** The AppError an adapter answers `error` with: a domain error itself, a database fault as 503, else null (unexpected). */
export function domainError(error: unknown): AppError | null {
  if (error instanceof AppError) return error;
  if (error instanceof Error && (DATABASE_FAULT.test(error.message) || DATABASE_FAULT.test(String((error as { code?: unknown }).code)))) {
    return new AppError('SERVICE_UNAVAILABLE', 'The database is not responding: try again shortly', undefined, 1);
  }
  return null;
}

export class NotAuthenticatedError extends AppError {
  constructor(message = 'Not authenticated') {
    super('UNAUTHENTICATED', message);
  }
}

export class InvalidCredentialsError extends AppError {
  constructor() {
    super('UNAUTHENTICATED', 'Invalid authentication credentials');
  }
}

export class ChatNotFoundError extends AppError {
  constructor() {
    super('NOT_FOUND', 'Chat not found');
  }
}

/** A message that is not in the chat, or no longer: deleted messages are gone for every caller. */
export class MessageNotFoundError extends AppError {
  constructor() {
    super('NOT_FOUND', 'Message not found');
  }
}

export class UserNotFoundError extends AppError {
  constructor() {
    super('NOT_FOUND', 'User not found');
  }
}

export class NotAuthorizedError extends AppError {
  constructor() {
    super('FORBIDDEN', 'Not authorized');
  }
}

export class RateLimitedError extends AppError {
  constructor(message: string, retryAfterSeconds: number) {
    super('RATE_LIMITED', message, undefined, retryAfterSeconds);
  }
}
