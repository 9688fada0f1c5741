import { AckLedger } from './ledger';
import { DeliveryAudit } from './delivery-audit';
import { SoakTally } from './tally';

/**
 * What every part of the load shares: the tallies, the acknowledged messages, the connection logs,
 * and whether the run is still going. Every loop of the load waits through `pause`, so stopping
 * the run ends every loop within one of its steps.
 */
export class SoakRun {
  readonly tally = new SoakTally();
  readonly ledger = new AckLedger();
  readonly audit = new DeliveryAudit();
  stopReason: string | null = null;
  private readonly wakers = new Set<() => void>();

  get running(): boolean {
    return this.stopReason === null;
  }

  stop(reason: string): void {
    if (this.stopReason !== null) return;
    this.stopReason = reason;
    for (const wake of [...this.wakers]) wake();
  }

  /** Sleeps `ms`, or less when the run stops meanwhile. */
  pause(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }
}

/** A whole number of milliseconds between `min` and `max`. */
export const between = (min: number, max: number) => Math.round(min + Math.random() * (max - min));
