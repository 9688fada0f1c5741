import type { EventBus, Payload } from './pubsub';

/** The topics caches' invalidations travel on, each one channel (id 0) for the whole cluster. */
type ForgetTopic = 'membership:forget' | 'user:forget';

/** What an invalidation names, without the instance it came from. */
export type ForgetScope<K extends ForgetTopic> = Omit<Payload<K>, 'origin'>;

const CLUSTER = 0;

/**
 * A cache's invalidations across the cluster: `forget` applies one here at once and publishes it;
 * every other instance applies it when it arrives, and this instance's own come back and are skipped.
 * A lookup takes a `mark()` before it reads and caches what it read only if `mayCache(mark)`: an
 * invalidation that came meanwhile may be about what it read. While Redis is unreachable, other
 * instances' invalidations cannot arrive: the cache is then neither read (`trusted()`) nor filled,
 * and what it held is dropped once Redis answers again (`forgetEverythingHere`).
 */
export class ClusterForgetting<K extends ForgetTopic> {
  private readonly origin = crypto.randomUUID();
  private forgets = 0;

  constructor(
    private readonly bus: Pick<EventBus, 'pubsub' | 'available'>,
    private readonly topic: K,
    private readonly forgetHere: (scope: ForgetScope<K>) => void,
    private readonly forgetAllHere: () => void,
  ) {
    // Held for the life of the process: the cache it keeps honest lives as long.
    bus.pubsub.on(topic, CLUSTER, ({ origin, ...scope }) => {
      if (origin !== this.origin) this.apply(scope);
    });
  }

  /** Applies `scope` on this instance at once, and on every other one. */
  forget(scope: ForgetScope<K>): void {
    this.apply(scope);
    this.bus.pubsub.publish(this.topic, CLUSTER, { ...scope, origin: this.origin });
  }

  /** After an outage: invalidations published meanwhile may never have arrived, so nothing cached before is kept. */
  forgetEverythingHere(): void {
    this.forgets++;
    this.forgetAllHere();
  }

  /** Whether cached answers hold now: not while other instances' invalidations cannot reach this one. */
  trusted(): boolean {
    return this.bus.available();
  }

  mark(): number {
    return this.forgets;
  }

  /** Whether an invalidation was applied here since `mark`. */
  overtaken(mark: number): boolean {
    return this.forgets !== mark;
  }

  /** Whether what a lookup read after `mark` may be cached: nothing overtook it, and invalidations can arrive. */
  mayCache(mark: number): boolean {
    return !this.overtaken(mark) && this.trusted();
  }

  private apply(scope: ForgetScope<K>): void {
    this.forgets++;
    this.forgetHere(scope);
  }
}
