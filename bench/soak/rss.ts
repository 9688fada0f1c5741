import { memoryOf } from '../lib/proc';
import { leastSquaresSlope } from '../lib/stats';

/** The server's resident set size once a second (VmRSS from /proc), from `start()` to `stop()`. */
export class RssRecorder {
  readonly samples: { seconds: number; mb: number }[] = [];
  private timer: Timer | undefined;
  private startedAt = 0;

  constructor(private readonly pid: number) {}

  start(everyMs = 1_000): void {
    this.startedAt = performance.now();
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  /** Takes a last sample; calling it again does nothing. */
  stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  /** The last sample, in MB. */
  latest(): number | null {
    return this.samples.at(-1)?.mb ?? null;
  }

  /** The first sample at or after `seconds`, in MB. */
  at(seconds: number): number | null {
    return this.samples.find((sample) => sample.seconds >= seconds)?.mb ?? null;
  }

  /** Least-squares growth in MB per hour over the samples from `fromSeconds` on. */
  slopeMbPerHour(fromSeconds: number): number | null {
    const slope = leastSquaresSlope(this.samples.filter((s) => s.seconds >= fromSeconds).map((s) => ({ x: s.seconds, y: s.mb })));
    return slope === null ? null : slope * 3600;
  }

  private sample(): void {
    const memory = memoryOf(this.pid);
    // The process may be gone (it died, or it is being stopped): nothing to read.
    if (memory) this.samples.push({ seconds: (performance.now() - this.startedAt) / 1000, mb: memory.rss / 2 ** 20 });
  }
}
