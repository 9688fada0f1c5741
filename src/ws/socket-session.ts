import type { ServerWebSocket } from 'bun';
import type { AuthService, PublicUser } from '../services/auth.service';
import { AppError } from '../services/errors';
import type { PresenceService, PresenceTicket } from '../services/presence.service';
import type { SocketQuota } from '../services/socket-quota';

/** How the server closes a socket of either protocol, and the reason the client reads. */
export interface SocketClose {
  code: number;
  reason: string;
}

export const CLOSE = {
  /** `/ws` only: a missing or bad token (graphql-ws answers it with its own 4403 "Forbidden"). */
  badCredentials: { code: 1008, reason: 'Invalid authentication credentials' },
  /** The token could not be checked (the database is down): the server's fault, not the client's. */
  internalError: { code: 1011, reason: 'Internal server error' },
  /** The user already has MAX_SOCKETS_PER_USER sockets open in this process. */
  tooManySockets: { code: 4429, reason: 'Too many open sockets' },
  /** The token the socket was opened with has expired (graphql-ws's own code for Unauthorized). */
  tokenExpired: { code: 4401, reason: 'Token expired' },
} as const satisfies Record<string, SocketClose>;

export interface SocketSession {
  user: PublicUser;
  /** When the token expires, in ms since the epoch. */
  expiresAt: number;
}

/**
 * A socket's token checked: null for bad credentials (an UNAUTHENTICATED AppError). Anything else
 * (the user lookup failing) is the server's fault and is rethrown, never taken for bad credentials.
 */
export async function authenticateSocket(auth: AuthService, token: string | null): Promise<SocketSession | null> {
  try {
    return await auth.authenticateWithExpiry(token);
  } catch (error) {
    if (error instanceof AppError && error.code === 'UNAUTHENTICATED') return null;
    throw error;
  }
}

/** The services whose resources an open socket holds. */
type Holders = { sockets: SocketQuota; presence: PresenceService };

/**
 * What an authenticated socket holds while it is open, whatever its protocol: a place in its user's
 * socket quota, its place on the clock that closes it (4401) when its token expires, and its count in
 * its user's presence (online while any socket is open). One object per socket, no closure each: an
 * idle socket's memory is mostly what it holds. `release` gives it all back once, however often it is
 * called; the close handler (src/ws/index.ts) calls it, so it runs on every path a socket closes by.
 */
export class SocketHold {
  private released = false;
  private readonly userId: number;
  private readonly expiresAt: number;
  private readonly presenceTicket: PresenceTicket | null;

  constructor(
    private readonly holders: Holders,
    session: SocketSession,
    private readonly ws: ServerWebSocket<unknown>,
  ) {
    this.userId = session.user.id;
    this.expiresAt = session.expiresAt;
    tokenExpiries.add(session.expiresAt, ws);
    this.presenceTicket = holders.presence.connect(session.user);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    tokenExpiries.remove(this.expiresAt, this.ws);
    this.holders.sockets.release(this.userId);
    this.holders.presence.disconnect(this.presenceTicket);
  }
}

/** Takes what `ws` holds while open (see SocketHold); over the quota the socket is closed at once (4429) and null returned. */
export function holdSocket(holders: Holders, session: SocketSession, ws: ServerWebSocket<unknown>): SocketHold | null {
  try {
    holders.sockets.acquire(session.user.id);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    ws.close(CLOSE.tooManySockets.code, CLOSE.tooManySockets.reason);
    return null;
  }
  return new SocketHold(holders, session, ws);
}

// setTimeout fires at once for delays past 2^31-1 ms (24.8 days): longer waits go in steps.
const LONGEST_TIMEOUT_MS = 2 ** 31 - 1;

/** The whole second a token expiring at `expiresAt` (ms) is due in: `exp` is in whole seconds, so this is exact. */
const secondOf = (expiresAt: number) => Math.ceil(expiresAt / 1000);

/** The sockets whose tokens expire within one second, and the one timer that closes them all. */
interface ExpirySecond {
  sockets: Set<ServerWebSocket<unknown>>;
  timer: Timer;
}

/**
 * Closes each socket (4401) when its token expires. A timer costs some 2 KB, as much as the rest of an
 * idle socket: sockets whose tokens expire in the same second share one, so a process holds at most one
 * timer per second of the token lifetime (TOKEN_EXPIRE_MINUTES × 60), however many sockets are open.
 * A socket is closed within a second after its token's `exp`.
 */
export class TokenExpiries {
  private readonly seconds = new Map<number, ExpirySecond>();

  /** How many timers it holds: one per second that some open socket's token expires in. */
  get timers(): number {
    return this.seconds.size;
  }

  /** Schedules `ws`'s close at `expiresAt` (ms since the epoch). */
  add(expiresAt: number, ws: ServerWebSocket<unknown>): void {
    const second = secondOf(expiresAt);
    let due = this.seconds.get(second);
    if (!due) {
      due = { sockets: new Set(), timer: this.arm(second) };
      this.seconds.set(second, due);
    }
    due.sockets.add(ws);
  }

  /** Unschedules `ws`, added with the same `expiresAt`. */
  remove(expiresAt: number, ws: ServerWebSocket<unknown>): void {
    const second = secondOf(expiresAt);
    const due = this.seconds.get(second);
    if (!due?.sockets.delete(ws) || due.sockets.size > 0) return;
    clearTimeout(due.timer);
    this.seconds.delete(second);
  }

  private arm(second: number): Timer {
    const left = second * 1000 - Date.now();
    if (left > LONGEST_TIMEOUT_MS) {
      return setTimeout(() => {
        const due = this.seconds.get(second);
        if (due) due.timer = this.arm(second);
      }, LONGEST_TIMEOUT_MS);
    }
    return setTimeout(() => this.expire(second), Math.max(0, left));
  }

  private expire(second: number): void {
    const due = this.seconds.get(second);
    this.seconds.delete(second);
    // Each close runs its socket's release, which finds its second gone and has nothing to undo.
    for (const ws of due?.sockets ?? []) ws.close(CLOSE.tokenExpired.code, CLOSE.tokenExpired.reason);
  }
}

/** One clock for every socket of the process, of either protocol. */
const tokenExpiries = new TokenExpiries();
