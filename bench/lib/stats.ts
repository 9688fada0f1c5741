/**
 * Cheap sample collection for hot receive paths: a growable Float64Array (no boxing, no per-push
 * allocation) that is sorted once when the run is over.
 */
export class Samples {
  private data = new Float64Array(1 << 16);
  private length = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  get count(): number {
    return this.length;
  }

  /** Sorted copy of the samples; call once, after measuring. */
  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort();
  }

  summary(): Summary {
    return summarize(this.sorted());
  }
}

export interface Summary {
  count: number;
  mean: number | null;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

/** Nearest-rank percentile of an ascending array; null when it is empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** The middle value of an ascending array, or the mean of the two middle ones; null when it is empty. */
export function median(sorted: ArrayLike<number>): number | null {
  if (sorted.length === 0) return null;
  const half = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[Math.floor(half)]! : (sorted[half - 1]! + sorted[half]!) / 2;
}

export function summarize(sorted: ArrayLike<number>): Summary {
  let total = 0;
  for (let i = 0; i < sorted.length; i++) total += sorted[i]!;
  return {
    count: sorted.length,
    mean: sorted.length ? total / sorted.length : null,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : null,
  };
}

/** Rounds for display and for the JSON dump, so results stay readable. */
export const round = (value: number | null | undefined, digits = 2): number | null =>
  value === null || value === undefined || !Number.isFinite(value) ? null : Math.round(value * 10 ** digits) / 10 ** digits;

export const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : a / b);

/** Least-squares slope of `y` over `x`; null with fewer than two distinct `x`. */
export function leastSquaresSlope(points: readonly { x: number; y: number }[]): number | null {
  const n = points.length;
  if (n < 2) return null;
  let sumX = 0;
  let sumY = 0;
  for (const { x, y } of points) {
    sumX += x;
    sumY += y;
  }
  const meanX = sumX / n;
  const meanY = sumY / n;
  let covariance = 0;
  let varianceX = 0;
  for (const { x, y } of points) {
    covariance += (x - meanX) * (y - meanY);
    varianceX += (x - meanX) ** 2;
  }
  return varianceX === 0 ? null : covariance / varianceX;
}
