import { AppError } from './errors';

/**
 * Open sockets per user in this process, `/ws` and graphql-ws together, so one user cannot hold
 * the server's memory and file descriptors with sockets (MAX_SOCKETS_PER_USER; 0 turns the cap
 * off). It keeps no count of its own: presence already counts each user's sockets here, and a
 * second map of the same numbers would cost every connected user an entry more.
 */
export class SocketQuota {
  constructor(
    private readonly maxPerUser: number,
    /** The sockets `userId` has open here (see PresenceService.socketsHere). */
    readonly openFor: (userId: number) => number,
    private readonly onRefused?: () => void,
  ) {}

  /** Throws RATE_LIMITED "Too many open sockets" when `userId` may not open one more socket. */
  check(userId: number): void {
    if (this.maxPerUser !== 0 && this.openFor(userId) >= this.maxPerUser) {
      this.onRefused?.();
      throw new AppError('RATE_LIMITED', 'Too many open sockets');
    }
  }
}
