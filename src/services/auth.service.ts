import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Config } from '../config';
import type { Database } from '../db/client';
import { idsTable } from '../db/client';
import { batched } from './batched';
import { AppError, InvalidCredentialsError, NotAuthenticatedError } from './errors';
import type { LoginThrottle } from './login-throttle';
import { LruCache } from './lru-cache';
import type { PasswordHasher } from './password-hasher';
import type { Attempt, WindowCounter } from './rate-limit';
import { ClusterForgetting } from './cluster-forgetting';
import type { EventBus } from './pubsub';
import { loginInput, parseInput, registerInput } from './validation';

/** The columns of a user that may leave the server: never the password hash. */
export const publicUserSelect = { id: true, username: true, email: true, createdAt: true, displayName: true, avatarKey: true } as const;
export interface PublicUser {
  id: number;
  username: string;
  email: string;
  createdAt: Date;
  /** What others see instead of the username, when set. */
  displayName: string | null;
  /** The avatar's key in the file store, null when unset: its URL is made from it (`avatarUrl`). */
  avatarKey: string | null;
}

/** PublicUser's columns as a raw query reads them. */
interface PublicUserRow {
  id: number;
  username: string;
  email: string;
  created_at: Date;
  display_name: string | null;
  avatar_key: string | null;
}

/** A user's avatar URL: public (an `<img>` sends no header), and new with each avatar, so it is cached for good. */
export const avatarUrl = (user: Pick<PublicUser, 'id' | 'avatarKey'>): string | null =>
  user.avatarKey ? `/api/users/${user.id}/avatar?v=${user.avatarKey.slice(-12)}` : null;

const ALGORITHM = 'HS256';
const CLOCK_TOLERANCE_SECONDS = 5;

/** What stands between a client and the password hashes: each is counted before any hash runs. */
export interface AuthGuards {
  /** LOGIN_RATE_LIMIT: failed logins per username and per client address. */
  logins: LoginThrottle;
  /** REGISTER_RATE_LIMIT: registrations per client address. */
  registrations: WindowCounter;
  /** PASSWORD_HASH_CONCURRENCY and PASSWORD_HASH_QUEUE: every hash and check in the process. */
  passwords: PasswordHasher;
}

export class AuthService {
  private readonly key: Uint8Array<ArrayBuffer>;
  /** The key imported once for checking signatures: given the raw bytes, jose imports them again for every token. */
  private readonly verifyingKey: Promise<CryptoKey>;
  /** Verified against when the username is unknown, so both failures cost the same time. */
  private readonly decoyHash: Promise<string>;

  constructor(
    private readonly db: Database,
    private readonly config: Pick<Config, 'secretKey' | 'tokenExpireMinutes'>,
    private readonly guards: AuthGuards,
    bus: Pick<EventBus, 'pubsub' | 'available'>,
  ) {
    this.key = new TextEncoder().encode(config.secretKey);
    this.verifyingKey = crypto.subtle.importKey('raw', this.key, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    this.decoyHash = guards.passwords.hash(crypto.randomUUID());
    this.forgetting = new ClusterForgetting(
      bus,
      'user:forget',
      ({ userId }) => this.users.delete(userId),
      () => this.users.clear(),
    );
  }

  /**
   * Creates an account. The username is checked before the email, as the original did. Every
   * valid attempt counts against the client address, a refused one too: registration would
   * otherwise be a free way to learn which usernames exist.
   * @example await auth.register({ username: 'jane', email: 'jane@example.com', password: 'password123' }, '203.0.113.7')
   */
  async register(input: unknown, clientAddress: string | null): Promise<PublicUser> {
    const { username, email, password } = parseInput(registerInput, input);
    const attempt = this.guards.registrations.reserve(clientAddress ? [clientAddress] : []);
    return refundOnServerFault(attempt, () => this.createUser(username, email, password));
  }

  private async createUser(username: string, email: string, password: string): Promise<PublicUser> {
    const usernameKey = username.toLowerCase();
    if (await this.db.user.findUnique({ where: { usernameKey }, select: { id: true } })) {
      throw new AppError('CONFLICT', 'Username already registered');
    }
    if (await this.db.user.findUnique({ where: { email }, select: { id: true } })) {
      throw new AppError('CONFLICT', 'Email already registered');
    }
    const hashedPassword = await this.guards.passwords.hash(password);
    try {
      return await this.db.user.create({ data: { username, usernameKey, email, hashedPassword }, select: publicUserSelect });
    } catch (error) {
      // Two registrations raced past the checks above; the unique index decided.
      if (isUniqueViolation(error)) throw new AppError('CONFLICT', 'Username already registered');
      throw error;
    }
  }

  /**
   * Checks a password and returns the user with a fresh access token. The attempt is counted
   * before the hash and given back on success, so guesses sent all at once are refused past
   * LOGIN_RATE_LIMIT instead of all being checked.
   */
  async login(input: unknown, clientAddress: string | null): Promise<{ user: PublicUser; token: string }> {
    const { username, password } = parseInput(loginInput, input);
    const attempt = this.guards.logins.reserve(username, clientAddress);
    const user = await refundOnServerFault(attempt, () => this.checkPassword(username, password));
    if (!user) throw new NotAuthenticatedError('Incorrect username or password');
    attempt.refund();
    return { user, token: await this.issueToken(user.id) };
  }

  /** The user `username` names when `password` is theirs, else null; an unknown name costs a hash too (the decoy's). */
  private async checkPassword(username: string, password: string): Promise<PublicUser | null> {
    const found = await this.db.user.findUnique({
      where: { usernameKey: username.trim().toLowerCase() },
      select: { ...publicUserSelect, hashedPassword: true },
    });
    // An account made by a provider has no password (an empty hash): it costs the decoy's check too, and fails.
    const valid = await this.guards.passwords.verify(password, found?.hashedPassword || (await this.decoyHash));
    if (!found || !found.hashedPassword || !valid) return null;
    const { hashedPassword: _hash, ...user } = found;
    return user;
  }

  issueToken(userId: number): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
      .setSubject(String(userId))
      .setIssuedAt()
      .setExpirationTime(`${this.config.tokenExpireMinutes}m`)
      .sign(this.key);
  }

  /**
   * The user a bearer token names. Every transport calls this: `Authorization: Bearer` on HTTP,
   * `?token=` on `/ws`, `connectionParams` on graphql-ws.
   */
  async authenticate(token: string | null | undefined): Promise<PublicUser> {
    return (await this.authenticateWithExpiry(token)).user;
  }

  /**
   * `authenticate`, with the moment the token expires (ms since the epoch): a socket outlives the
   * request that opened it, and is closed then. Only bad credentials are UNAUTHENTICATED; a failed
   * user lookup (the database down) rejects with its own error.
   */
  async authenticateWithExpiry(token: string | null | undefined): Promise<{ user: PublicUser; expiresAt: number }> {
    if (!token) throw new NotAuthenticatedError();
    let claims: { sub?: string; exp?: number };
    try {
      ({ payload: claims } = await jwtVerify(token, await this.verifyingKey, {
        algorithms: [ALGORITHM],
        requiredClaims: ['exp', 'sub'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JOSEError) throw new InvalidCredentialsError();
      throw error;
    }
    const id = Number(claims.sub);
    const user = Number.isSafeInteger(id) ? await this.userById(id) : null;
    if (!user) throw new InvalidCredentialsError();
    return { user, expiresAt: claims.exp! * 1000 };
  }

  /**
   * Every authenticated request and socket looks its user up, so a short-lived cache answers most of
   * them (Prisma's lookup costs ~170 µs), and the misses of one turn share one query (a burst of
   * sockets reconnecting). A profile change drops the user's entry on every instance (`forget`);
   * the expiry is a safety net only.
   */
  async userById(id: number): Promise<PublicUser | null> {
    const cached = this.forgetting.trusted() ? this.users.get(id) : undefined;
    if (cached) return cached;
    const mark = this.forgetting.mark();
    const user = (await this.usersByIds(id)) ?? null;
    // A lookup that a profile change overtook does not cache the columns it read before the change.
    if (user && this.forgetting.mayCache(mark)) this.users.set(id, user);
    return user;
  }

  private readonly usersByIds = batched(async (ids: number[]) => {
    // The columns of publicUserSelect, in one statement whatever the batch's size (see idsTable).
    const rows = await this.db.$queryRaw<PublicUserRow[]>`
      SELECT id, username, email, created_at, display_name, avatar_key FROM users WHERE id IN ${idsTable(this.db, ids)}`;
    return new Map(
      rows.map((row): [number, PublicUser] => [
        row.id,
        { id: row.id, username: row.username, email: row.email, createdAt: row.created_at, displayName: row.display_name, avatarKey: row.avatar_key },
      ]),
    );
  });

  private readonly users = new LruCache<number, PublicUser>(USER_CACHE_SIZE, USER_CACHE_TTL_MS);
  private readonly forgetting: ClusterForgetting<'user:forget'>;

  /** After a Redis outage: profile changes made meanwhile on other instances may never have been heard here. */
  forgetEverythingHere(): void {
    this.forgetting.forgetEverythingHere();
  }

  /** Drops a user's cached columns after their profile changed, here at once and on every other instance through the pub/sub. */
  forget(userId: number): void {
    this.forgetting.forget({ userId });
  }
}

const USER_CACHE_SIZE = 10_000;
const USER_CACHE_TTL_MS = 60_000;

/** Runs `work` for a counted attempt; one the server failed (busy, database down) was not the client's, and is given back. */
async function refundOnServerFault<T>(attempt: Attempt, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof AppError) || error.code === 'SERVICE_UNAVAILABLE') attempt.refund();
    throw error;
  }
}

export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'P2002';
}

/** The token of an `Authorization: Bearer …` header, or null. */
export function bearerToken(header: string | null | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1] ?? null;
}
