import type { Summary } from '../lib/stats';
import { Samples } from '../lib/stats';

/** Counters that the interval rows show as a rate or a count per interval. */
const COUNTERS = [
  'sent',
  'acked',
  'wsDeliveries',
  'graphqlDeliveries',
  'botChunkDeliveries',
  'wsReconnects',
  'graphqlReconnects',
  'botAsks',
  'botAnswers',
  'logins',
  'historyReads',
] as const;
type Counter = (typeof COUNTERS)[number];

export interface Interval extends Record<Counter, number> {
  seconds: number;
  ackLatencyMs: Summary;
  botFirstChunkMs: Summary;
}

/** Everything the soak counts, whole-run totals and per reporting interval, and its errors by kind. */
export class SoakTally {
  readonly totals: Record<Counter, number> = Object.fromEntries(COUNTERS.map((name) => [name, 0])) as Record<Counter, number>;
  /** Messages the pacer owed but dropped because every sender had its in-flight cap out: the server was behind. */
  notSent = 0;
  /** Sent, but the socket closed before its echo came back: neither acknowledged nor lost. */
  unconfirmed = 0;
  readonly ackLatencyMs = new Samples();
  readonly botFirstChunkMs = new Samples();
  readonly botAnswerMs = new Samples();
  /** Errors by kind, each with its first example. */
  readonly errors = new Map<string, { count: number; example: string }>();

  private intervalStart = performance.now();
  private atIntervalStart = { ...this.totals };
  private intervalAckLatency = new Samples();
  private intervalBotFirstChunk = new Samples();

  count(counter: Counter, by = 1): void {
    this.totals[counter] += by;
  }

  ack(latencyMs: number): void {
    this.totals.acked++;
    this.ackLatencyMs.push(latencyMs);
    this.intervalAckLatency.push(latencyMs);
  }

  botFirstChunk(latencyMs: number): void {
    this.botFirstChunkMs.push(latencyMs);
    this.intervalBotFirstChunk.push(latencyMs);
  }

  error(kind: string, example = ''): void {
    const entry = this.errors.get(kind);
    if (entry) entry.count++;
    else this.errors.set(kind, { count: 1, example: example.slice(0, 160) });
  }

  errorCount(): number {
    let total = 0;
    for (const { count } of this.errors.values()) total += count;
    return total;
  }

  /** What happened since the previous call (or the start), and starts the next interval. */
  takeInterval(): Interval {
    const now = performance.now();
    const counts = Object.fromEntries(COUNTERS.map((name) => [name, this.totals[name] - this.atIntervalStart[name]])) as Record<Counter, number>;
    const interval: Interval = {
      ...counts,
      seconds: (now - this.intervalStart) / 1000,
      ackLatencyMs: this.intervalAckLatency.summary(),
      botFirstChunkMs: this.intervalBotFirstChunk.summary(),
    };
    this.intervalStart = now;
    this.atIntervalStart = { ...this.totals };
    this.intervalAckLatency = new Samples();
    this.intervalBotFirstChunk = new Samples();
    return interval;
  }
}
