import type { Logger } from '../log';
import type { EventBus } from './pubsub';
import { settleWithin } from './timeout';

/** One step of the repair: what it makes good, for the log line when it fails. */
interface RepairStep {
  what: string;
  run: (since: Date) => Promise<void> | void;
}

/** A step still running after this long is logged and waited for no more, so one hung query never stops later repairs. */
const STEP_TIMEOUT_MS = 30_000;

/**
 * What an instance makes good when Redis answers again after an outage, when the events published
 * meanwhile may never have reached it. At once, in the turn Redis is found again: the caches are
 * dropped, before any request can read them. Then, while the bus holds the events arriving meanwhile,
 * each transport's open sockets and subscriptions are checked against the database, so that whoever
 * left a chat meanwhile is sent nothing of what comes next. Then what is delivered again (the rooms'
 * messages and changes, a notice to the users' own streams, the asks left unanswered). One repair's
 * checks and replay at a time: a second outage's start once the first's are done, so an older read
 * never undoes a newer one.
 */
export class OutageRepair {
  private readonly cacheDrops: (() => void)[] = [];
  private readonly membershipSteps: RepairStep[] = [];
  private readonly replaySteps: RepairStep[] = [];
  private previous: Promise<void> = Promise.resolve();

  constructor(
    bus: Pick<EventBus, 'onResume'>,
    private readonly log: Logger,
  ) {
    bus.onResume((since) => this.run(since));
  }

  /** Adds a cache to drop as soon as Redis is back: the invalidations published meanwhile may never have arrived. */
  dropCache(drop: () => void): void {
    this.cacheDrops.push(drop);
  }

  /**
   * Adds a check of memberships held outside the database (open sockets, subscriptions), run before
   * any replay. A check that fails must leave nothing it holds in an unknown state: it ends or closes
   * what it could not check.
   */
  checkMemberships(what: string, run: () => Promise<void> | void): void {
    this.membershipSteps.push({ what, run });
  }

  /** Adds what is delivered again once memberships are checked. */
  replay(what: string, run: (since: Date) => Promise<void> | void): void {
    this.replaySteps.push({ what, run });
  }

  /** Runs every step after the repairs before it; settles once memberships are checked (the replay goes on). */
  private run(since: Date): Promise<void> {
    for (const drop of this.cacheDrops) drop();
    const checked = this.previous.then(() => this.runAll(this.membershipSteps, since));
    this.previous = checked.then(() => this.runAll(this.replaySteps, since));
    return checked;
  }

  /** The steps at once; one step's failure is logged and keeps none of the others from running. */
  private async runAll(steps: RepairStep[], since: Date): Promise<void> {
    await Promise.all(
      steps.map(async (step) => {
        try {
          await settleWithin(Promise.resolve(step.run(since)), STEP_TIMEOUT_MS, () => {
            this.log.error(`after the Redis outage, ${step.what} took over ${STEP_TIMEOUT_MS} ms: going on without it`);
          });
        } catch (error) {
          this.log.error({ err: error }, `after the Redis outage, ${step.what} failed`);
        }
      }),
    );
  }
}
