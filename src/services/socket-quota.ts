import { AppError } from './errors';

/**
 * Open sockets per user in this process, `/ws` and graphql-ws together, so one user cannot hold
 * the server's memory and file descriptors with sockets (MAX_SOCKETS_PER_USER; 0 turns the cap
 * off). Only users with a socket open have an entry: the map is as bounded as the sockets are.
 */
export class SocketQuota {
  private readonly open = new Map<number, number>();

  constructor(
    private readonly maxPerUser: number,
    private readonly onRefused?: () => void,
  ) {}

  /**
   * Takes a place for one more socket of `userId`, or throws RATE_LIMITED "Too many open sockets".
   * Each place taken is given back by one `release` (SocketHold calls it once, when the socket closes).
   */
  acquire(userId: number): void {
    const count = this.open.get(userId) ?? 0;
    if (this.maxPerUser !== 0 && count >= this.maxPerUser) {
      this.onRefused?.();
      throw new AppError('RATE_LIMITED', 'Too many open sockets');
    }
    this.open.set(userId, count + 1);
  }

  release(userId: number): void {
    const left = (this.open.get(userId) ?? 1) - 1;
    if (left === 0) this.open.delete(userId);
    else this.open.set(userId, left);
  }

  /** The sockets `userId` has open here. */
  openFor(userId: number): number {
    return this.open.get(userId) ?? 0;
  }

  /** Users with at least one socket open here. */
  get users(): number {
    return this.open.size;
  }
}
