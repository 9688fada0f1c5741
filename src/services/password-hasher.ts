import { AppError } from './errors';

// argon2id at OWASP's recommended floor (19 MiB, 2 passes): login's main cost, stated in the bench.
const HASH_OPTIONS = { algorithm: 'argon2id', memoryCost: 19_456, timeCost: 2 } as const;

/** The two calls of `Bun.password` used here; tests hand in a stand-in they can hold and count. */
export type Argon2 = Pick<typeof Bun.password, 'hash' | 'verify'>;

/**
 * Every password hash and check in the process, at most `concurrency` at once: each takes a core
 * for tens of milliseconds and 19 MiB, so a burst of logins or registrations must queue rather than
 * take every core. At most `maxWaiting` wait their turn; past that a request is refused at once
 * with SERVICE_UNAVAILABLE ("Server busy, try again", retry after 1 s) instead of queueing CPU work
 * without end.
 * @example await passwords.verify(password, user.hashedPassword)
 */
export class PasswordHasher {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly limits: { concurrency: number; maxWaiting: number; onRefused?: () => void },
    private readonly argon2: Argon2 = Bun.password,
  ) {}

  hash(password: string): Promise<string> {
    return this.inTurn(() => this.argon2.hash(password, HASH_OPTIONS));
  }

  verify(password: string, hash: string): Promise<boolean> {
    return this.inTurn(() => this.argon2.verify(password, hash));
  }

  private async inTurn<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.concurrency) {
      if (this.waiting.length >= this.limits.maxWaiting) {
        this.limits.onRefused?.();
        throw new AppError('SERVICE_UNAVAILABLE', 'Server busy, try again', undefined, 1);
      }
      // A freed slot is handed straight to the longest waiter, still counted as taken: were it given
      // back first, a request arriving before the waiter resumes could take it too.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
