import type { ServerWebSocket } from 'bun';
import type { AuthService, PublicUser } from '../services/auth.service';
import { AppError } from '../services/errors';
import type { PresenceService } from '../services/presence.service';
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

/**
 * What an authenticated socket holds while it is open, whatever its protocol: a place in its user's
 * socket quota, the timer that closes it (4401) when its token expires, and its count in its user's
 * presence (online while any socket is open). Over the quota the socket is closed at once (4429)
 * and null returned. The release returned is called by the close handler (src/ws/index.ts), so it
 * runs on every path a socket closes by.
 */
export function holdSocket(
  { sockets, presence }: { sockets: SocketQuota; presence: PresenceService },
  session: SocketSession,
  ws: ServerWebSocket<unknown>,
): (() => void) | null {
  let releasePlace: () => void;
  try {
    releasePlace = sockets.acquire(session.user.id);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    ws.close(CLOSE.tooManySockets.code, CLOSE.tooManySockets.reason);
    return null;
  }
  const stopTimer = at(session.expiresAt, () => ws.close(CLOSE.tokenExpired.code, CLOSE.tokenExpired.reason));
  const leave = presence.connect(session.user);
  return () => {
    stopTimer();
    releasePlace();
    leave();
  };
}

// setTimeout fires at once for delays past 2^31-1 ms (24.8 days): longer waits go in steps.
const LONGEST_TIMEOUT_MS = 2 ** 31 - 1;

/** Runs `run` at `time` (ms since the epoch); the function returned cancels it. */
function at(time: number, run: () => void): () => void {
  let timer: Timer;
  const arm = () => {
    const left = time - Date.now();
    timer = left > LONGEST_TIMEOUT_MS ? setTimeout(arm, LONGEST_TIMEOUT_MS) : setTimeout(run, Math.max(0, left));
  };
  arm();
  return () => clearTimeout(timer);
}
