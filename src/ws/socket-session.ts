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
  /** The server is draining (or closed): every socket goes, and one opening meanwhile is not kept. */
  shuttingDown: { code: 1001, reason: 'Server shutting down' },
  /** What the socket receives could not be checked after a Redis outage: reconnecting reads it again. */
  tryAgainLater: { code: 1013, reason: 'Try again later' },
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
interface Holders {
  sockets: SocketQuota;
  presence: Pick<PresenceService, 'connect' | 'disconnect'>;
}

/**
 * What the data of every open socket carries, whatever its protocol. Fields of the data rather than
 * objects and collection entries of their own: an idle socket's memory is mostly what it holds.
 */
export interface SocketState {
  /** When it opened (`performance.now()`), for the close's log line. */
  openedAt: number;
  /** Its place in OpenSockets' list. */
  slot: number;
  /** When its token expires (ms since the epoch): OpenSockets closes it then (4401). Infinity until it is authenticated. */
  expiresAt: number;
  /** Its count in its user's presence (online while any socket is open), given back once when it closes. */
  presence: PresenceTicket | null;
}

/** A socket's state as it opens: nothing held yet. */
export const openingState = (): SocketState => ({ openedAt: 0, slot: -1, expiresAt: Number.POSITIVE_INFINITY, presence: null });

/**
 * Takes what an authenticated socket holds while it is open, whatever its protocol: a place in its
 * user's socket quota, its token's expiry (see OpenSockets) and its count in its user's presence,
 * which is what the quota counts. A socket over the quota is closed at once (4429), and one opening
 * once presence has closed (the server going away) with 1001; false is returned then, nothing held.
 * `releaseSocket` gives it back: the close handler (src/ws/index.ts) calls it, so it runs on every
 * path a socket closes by.
 */
export function holdSocket(holders: Holders, session: SocketSession, ws: ServerWebSocket<SocketState>): boolean {
  try {
    holders.sockets.check(session.user.id);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    ws.close(CLOSE.tooManySockets.code, CLOSE.tooManySockets.reason);
    return false;
  }
  const ticket = holders.presence.connect(session.user);
  if (!ticket) {
    ws.close(CLOSE.shuttingDown.code, CLOSE.shuttingDown.reason);
    return false;
  }
  ws.data.expiresAt = session.expiresAt;
  ws.data.presence = ticket;
  return true;
}

/** Gives back what `holdSocket` took, once however often it is called. */
export function releaseSocket(holders: { presence: Pick<PresenceService, 'disconnect'> }, ws: ServerWebSocket<SocketState>): void {
  const ticket = ws.data.presence;
  ws.data.presence = null;
  holders.presence.disconnect(ticket);
}

/** How often OpenSockets looks for expired tokens: a socket is closed within this long after its token's `exp`. */
const EXPIRY_SWEEP_MS = 1000;

/**
 * Every open socket of the process, of both protocols, in an array that knows each one's place: a
 * socket costs one slot, where a map or a set entry costs some 70 bytes. While any is open, one timer
 * looks each second for those whose token has expired and closes them (4401): a pass over 10,000 sockets
 * takes about 20 µs, and no socket holds a timer or a place in a schedule of its own.
 */
export class OpenSockets<T extends SocketState> {
  private readonly sockets: ServerWebSocket<T>[] = [];
  private sweep: Timer | null = null;

  get size(): number {
    return this.sockets.length;
  }

  /** Whether the expiry timer runs: exactly while a socket is open. */
  get sweeping(): boolean {
    return this.sweep !== null;
  }

  add(ws: ServerWebSocket<T>): void {
    ws.data.openedAt = performance.now();
    ws.data.slot = this.sockets.length;
    this.sockets.push(ws);
    if (!this.sweep) {
      this.sweep = setInterval(() => this.closeExpired(), EXPIRY_SWEEP_MS);
      // It serves the sockets: it never keeps the process alive by itself.
      this.sweep.unref();
    }
  }

  /** Takes `ws` out (its slot goes to the last socket); a socket not in the list is left alone. */
  remove(ws: ServerWebSocket<T>): void {
    const { slot } = ws.data;
    if (this.sockets[slot] !== ws) return;
    const last = this.sockets.pop()!;
    if (last !== ws) {
      this.sockets[slot] = last;
      last.data.slot = slot;
    }
    ws.data.slot = -1;
    if (this.sockets.length === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  /** Closes every open socket with `code`. */
  closeAll(code: number, reason: string): void {
    // A close may run its handler at once, which takes the socket out of the list: close a copy.
    for (const ws of this.sockets.slice()) ws.close(code, reason);
  }

  private closeExpired(): void {
    const now = Date.now();
    const expired = this.sockets.filter((ws) => ws.data.expiresAt <= now);
    for (const ws of expired) ws.close(CLOSE.tokenExpired.code, CLOSE.tokenExpired.reason);
  }
}
