/**
 * What `work` settles with, or, when it has not settled within `ms`, what `onTimeout` gives (or
 * throws). The timer is cleared either way; `work` itself is not cancelled.
 * @example await settleWithin(db.$queryRaw`SELECT 1`.then(() => 'ok'), 2_000, () => 'unreachable')
 */
export async function settleWithin<T>(work: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: Timer | undefined;
  const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))).then(onTimeout);
  try {
    return await Promise.race([work, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
