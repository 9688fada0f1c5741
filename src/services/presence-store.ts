import type { UserPresenceEvent } from './pubsub';

/** A user's change of status, as decided once for the whole cluster. */
export type PresenceChange = Omit<UserPresenceEvent, 'type'>;

/** A user as presence knows them: enough to announce them without a query. */
export interface PresentUser {
  id: number;
  username: string;
}

/**
 * Where presence is decided: who is online anywhere, and which change happened. The presence service
 * counts this instance's sockets and tells the store only of a user's first socket here opening and
 * last one closing; every transition the store returns is the cluster's one and only announcement
 * of that change.
 */
export interface PresenceStore {
  /** The user's first socket on this instance opened: the change when they were offline everywhere. */
  arrive(user: PresentUser): Promise<PresenceChange | null>;
  /** The user's last socket here closed: true when they have none anywhere, so their grace starts now. */
  depart(user: PresentUser): Promise<boolean>;
  /** The grace is over: the change when the user is still without a socket anywhere (and nobody announced it yet). */
  settle(userId: number): Promise<PresenceChange | null>;
  onlineAmong(userIds: number[]): Promise<Set<number>>;
  /**
   * Stops what the store runs. Returns the offline changes nobody else will announce (a single
   * process going away with users online): they are persisted, so `last_seen_at` survives a restart.
   */
  close(): Promise<PresenceChange[]>;
}

/** What a store that repairs and sweeps by itself needs of the instance it runs in. */
export interface PresenceHost {
  /** Users with a socket open on this instance now. */
  usersHere(): PresentUser[];
  /** How many sockets `userId` has open on this instance now. */
  socketsHere(userId: number): number;
  /** Changes the store found by itself (an instance that died, a repair after an outage): announced as any other. */
  announce(changes: PresenceChange[]): void;
}

/**
 * One process. Whoever has a socket open is online, and the presence service (the host) counts them
 * already: this store keeps only those whose last socket has closed and who wait out the grace, still
 * online, with when it closed. A connected user costs it nothing.
 */
export class LocalPresenceStore implements PresenceStore {
  private readonly departed = new Map<number, { username: string; departedAt: Date }>();
  private version = 0;

  constructor(private readonly host: Pick<PresenceHost, 'usersHere' | 'socketsHere'>) {}

  arrive(user: PresentUser): Promise<PresenceChange | null> {
    // Back within the grace: online all along.
    if (this.departed.delete(user.id)) return Promise.resolve(null);
    return Promise.resolve({ userId: user.id, username: user.username, status: 'online', lastSeenAt: null, version: ++this.version });
  }

  depart(user: PresentUser): Promise<boolean> {
    this.departed.set(user.id, { username: user.username, departedAt: new Date() });
    return Promise.resolve(true);
  }

  settle(userId: number): Promise<PresenceChange | null> {
    const departed = this.departed.get(userId);
    if (!departed) return Promise.resolve(null);
    this.departed.delete(userId);
    return Promise.resolve({ userId, username: departed.username, status: 'offline', lastSeenAt: departed.departedAt, version: ++this.version });
  }

  onlineAmong(userIds: number[]): Promise<Set<number>> {
    return Promise.resolve(new Set(userIds.filter((id) => this.departed.has(id) || this.host.socketsHere(id) > 0)));
  }

  close(): Promise<PresenceChange[]> {
    const now = new Date();
    const offline = (userId: number, username: string, lastSeenAt: Date): PresenceChange => ({
      userId,
      username,
      status: 'offline',
      lastSeenAt,
      version: ++this.version,
    });
    const left = [
      ...this.host.usersHere().map((user) => offline(user.id, user.username, now)),
      ...[...this.departed].map(([userId, { username, departedAt }]) => offline(userId, username, departedAt)),
    ];
    this.departed.clear();
    return Promise.resolve(left);
  }
}
