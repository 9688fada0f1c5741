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
