/**
 * Runs `onEvent` for each event of a pub/sub subscription until the returned stop function is
 * called. Transports use it to bridge a topic to their sockets.
 */
export function listen<T>(events: AsyncIterable<T>, onEvent: (event: T) => void): () => void {
  const iterator = events[Symbol.asyncIterator]();
  void (async () => {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      try {
        onEvent(next.value);
      } catch (error) {
        console.error('event delivery failed', error);
      }
    }
  })();
  return () => void iterator.return?.();
}
