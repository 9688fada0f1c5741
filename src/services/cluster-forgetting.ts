import type { Payload, PubSub } from './pubsub';

/** The topics caches' invalidations travel on, each one channel (id 0) for the whole cluster. */
type ForgetTopic = 'membership:forget' | 'user:forget';

/** What an invalidation names, without the instance it came from. */
export type ForgetScope<K extends ForgetTopic> = Omit<Payload<K>, 'origin'>;

const CLUSTER = 0;

/**
 * A cache's invalidations across the cluster: `forget` applies one here at once and publishes it;
 * every other instance applies it when it arrives, and this instance's own come back and are skipped.
 * A lookup takes a `mark()` before it reads and caches what it read only if `overtaken(mark)` is
 * false: an invalidation that came meanwhile may be about what it read.
 */
export class ClusterForgetting<K extends ForgetTopic> {
  private readonly origin = crypto.randomUUID();
  private forgets = 0;

  constructor(
    private readonly pubsub: PubSub,
    private readonly topic: K,
    private readonly forgetHere: (scope: ForgetScope<K>) => void,
  ) {
    // Held for the life of the process: the cache it keeps honest lives as long.
    pubsub.on(topic, CLUSTER, ({ origin, ...scope }) => {
      if (origin !== this.origin) this.apply(scope);
    });
  }

  /** Applies `scope` on this instance at once, and on every other one. */
  forget(scope: ForgetScope<K>): void {
    this.apply(scope);
    this.pubsub.publish(this.topic, CLUSTER, { ...scope, origin: this.origin });
  }

  mark(): number {
    return this.forgets;
  }

  overtaken(mark: number): boolean {
    return this.forgets !== mark;
  }

  private apply(scope: ForgetScope<K>): void {
    this.forgets++;
    this.forgetHere(scope);
  }
}
