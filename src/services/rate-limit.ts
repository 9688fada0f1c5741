/**
 * A token bucket: `ratePerSecond` steady, up to `burst` at once. A rate of 0 means no limit,
 * which is how the settings turn a limit off (e.g. for benchmarks).
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.tokens = burst;
    this.updatedAt = now();
  }

  /** Takes one token if there is one; false means the caller is over the limit. */
  take(): boolean {
    if (this.ratePerSecond === 0) return true;
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond);
    this.updatedAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Seconds until the next token, for a `Retry-After`. */
  secondsUntilNext(): number {
    return this.ratePerSecond === 0 ? 0 : Math.ceil(Math.max(0, 1 - this.tokens) / this.ratePerSecond);
  }
}
