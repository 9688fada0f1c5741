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
 * open sockets and subscriptions), so that whoever left a chat meanwhile is sent nothing of what is
 * replayed next; then the rooms' messages and changes; then the asks left unanswered.
 */
export class OutageRepair {
  private readonly membershipSteps: RepairStep[] = [];
  private readonly replaySteps: RepairStep[] = [];

  constructor(
    bus: Pick<EventBus, 'onResume'>,
    private readonly log: Logger,
  ) {
    bus.onResume((since) => void this.run(since));
  }

  /** Adds a check of memberships held outside the database (caches, open sockets, subscriptions): run before any replay. */
  checkMemberships(what: string, run: () => Promise<void> | void): void {
    this.membershipSteps.push({ what, run });
  }

  /** Adds what is delivered again once memberships are checked. */
  replay(what: string, run: (since: Date) => Promise<void> | void): void {
    this.replaySteps.push({ what, run });
  }

  /** Runs every step; one step's failure is logged and keeps none of the others from running. */
  async run(since: Date): Promise<void> {
    await Promise.all(this.membershipSteps.map((step) => this.attempt(step, since)));
    await Promise.all(this.replaySteps.map((step) => this.attempt(step, since)));
  }

  private async attempt(step: RepairStep, since: Date): Promise<void> {
    try {
      await step.run(since);
    } catch (error) {
      this.log.error({ err: error }, `after the Redis outage, ${step.what} failed`);
    }
  }
}
