import type { Logger } from '../log';
import type { EventBus } from './pubsub';

/** One step of the repair: what it makes good, for the log line when it fails. */
interface RepairStep {
  what: string;
  run: (since: Date) => Promise<void> | void;
}

/**
 * What an instance makes good when Redis answers again after an outage, when the events published
 * meanwhile may never have reached it. In order: memberships first (caches, then each transport's
 * open sockets and subscriptions), while the bus holds the events arriving meanwhile, so that whoever
 * left a chat meanwhile is sent nothing of what comes next; then what is delivered again (the rooms'
 * messages and changes, a notice to the users' own streams, the asks left unanswered). One repair
 * at a time: a second outage's repair starts once the first is done, so an older read never undoes
 * a newer one.
 */
export class OutageRepair {
  private readonly membershipSteps: RepairStep[] = [];
  private readonly replaySteps: RepairStep[] = [];
  private previous: Promise<void> = Promise.resolve();

  constructor(
    bus: Pick<EventBus, 'onResume'>,
    private readonly log: Logger,
  ) {
    bus.onResume((since) => this.run(since));
  }

  /**
   * Adds a check of memberships held outside the database (caches, open sockets, subscriptions), run
   * before any replay. A check that fails must leave nothing it holds in an unknown state: it ends or
   * closes what it could not check.
   */
  checkMemberships(what: string, run: () => Promise<void> | void): void {
    this.membershipSteps.push({ what, run });
  }

  /** Adds what is delivered again once memberships are checked. */
  replay(what: string, run: (since: Date) => Promise<void> | void): void {
    this.replaySteps.push({ what, run });
  }

  /** Runs every step after the repairs before it; settles once memberships are checked (the replay goes on). */
  run(since: Date): Promise<void> {
    const checked = this.previous.then(() => this.runAll(this.membershipSteps, since));
    this.previous = checked.then(() => this.runAll(this.replaySteps, since));
    return checked;
  }

  /** One step's failure is logged and keeps none of the others from running. */
  private async runAll(steps: RepairStep[], since: Date): Promise<void> {
    await Promise.all(
      steps.map(async (step) => {
        try {
          await step.run(since);
        } catch (error) {
          this.log.error({ err: error }, `after the Redis outage, ${step.what} failed`);
        }
      }),
    );
  }
}
