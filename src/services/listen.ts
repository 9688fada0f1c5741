/**
 * Runs `onEvent` for each event of a pub/sub subscription until the returned stop function is
 * called. Transports use it to bridge a topic to their sockets.
 */
export function listen<T>(events: AsyncIterable<T>, onEvent: (event: T) => void): () => void {
  const iterator = events[Symbol.asyncIterator]();
  let stopped = false;
  void (async () => {
    for (;;) {
      const next = await iterator.next();
      // An async generator answers `return()` only after its pending `next()`: drop that event.
      if (next.done || stopped) return;
      try {
        onEvent(next.value);
      } catch (error) {
        console.error('event delivery failed', error);
      }
    }
  })();
  return () => {
    stopped = true;
    void iterator.return?.();
  };
}

/**
 * A subscription that first yields what happened before it started, then live events, with no gap:
 * listening starts before `readEarlier` runs (synchronously at first), so an event published
 * meanwhile is in one list or both, never in neither; `keepLive` drops the live copy of what was
 * already yielded. Used for catch-up by cursor and for a bot answer joined mid-stream.
 */
export async function replayThenLive<T>(
  live: AsyncIterable<T>,
  readEarlier: () => T[] | Promise<T[]>,
  keepLive: (event: T, earlier: T[]) => boolean = () => true,
): Promise<AsyncIterable<T>> {
  const iterator = live[Symbol.asyncIterator]();
  // Asking for the first event is what starts the subscription.
  const firstLive = iterator.next();
  const earlier = await readEarlier();
  return (async function* () {
    try {
      yield* earlier;
      for (let next = await firstLive; !next.done; next = await iterator.next()) {
        if (keepLive(next.value, earlier)) yield next.value;
      }
    } finally {
      await iterator.return?.();
    }
  })();
}
