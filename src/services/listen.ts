import { Repeater } from 'graphql-yoga';
import type { EndWhen, Listening } from './pubsub';
import { countedPush, SlowSubscriberError, SUBSCRIBER_QUEUE_LIMIT } from './pubsub';

/**
 * A subscription that first yields what happened before it started, then live events, with no gap:
 * listening starts (and, across instances, is confirmed) before `readEarlier` runs, so an event
 * published meanwhile is in one list or both, never in neither. A live event whose `keyOf` matches
 * one already yielded from the replay is dropped: de-duplicated by what was actually replayed, not
 * by id order (PostgreSQL may commit a lower id after a higher one). Used for catch-up by cursor
 * and for a bot answer joined mid-stream.
 *
 * Everything it acquires belongs to the returned Repeater: released when the reader returns (even
 * before the first event), when the replay fails, or when the reader falls too far behind.
 */
export function replayThenLive<T>(
  listen: (onEvent: (event: T) => void) => Listening,
  readEarlier: () => T[] | Promise<T[]>,
  keyOf: (event: T) => unknown = () => undefined,
  endWhen?: EndWhen,
): Repeater<T> {
  return new Repeater<T>(async (push, stop) => {
    let limit: number = SUBSCRIBER_QUEUE_LIMIT;
    const send = countedPush(push, stop, () => limit);
    let replayed: Set<unknown> | null = null;
    const heldDuringReplay: T[] = [];
    const listening = listen((event) => {
      if (replayed === null) {
        if (heldDuringReplay.length >= SUBSCRIBER_QUEUE_LIMIT) stop(new SlowSubscriberError());
        else heldDuringReplay.push(event);
      } else if (!replayed.has(keyOf(event))) {
        send(event);
      }
    });
    const ending = endWhen?.(() => stop());
    // A reader that leaves while the bus or the database is slow to answer must not wait for them.
    const left = stop.then(() => null);
    try {
      if ((await Promise.race([listening.ready.then(() => true), left])) === null) return;
      const earlier = await Promise.race([readEarlier(), left]);
      if (earlier === null) return;
      // Repeater queues at most 1,024 unread values and a replay may hold more (missed changes and
      // messages): it goes in slices, each read before the next is queued, live events held meanwhile.
      const slices: T[][] = [];
      for (let start = 0; start < earlier.length; start += SUBSCRIBER_QUEUE_LIMIT) slices.push(earlier.slice(start, start + SUBSCRIBER_QUEUE_LIMIT));
      const lastSlice = slices.pop() ?? [];
      for (const slice of slices) {
        let read: Promise<unknown> = Promise.resolve();
        for (const event of slice) read = push(event);
        if ((await Promise.race([read.then(() => true), left])) === null) return;
      }
      limit = Math.max(limit, lastSlice.length + 1);
      for (const event of lastSlice) send(event);
      replayed = new Set(earlier.map(keyOf).filter((key) => key !== undefined));
      for (const event of heldDuringReplay.splice(0)) if (!replayed.has(keyOf(event))) send(event);
      await stop;
    } catch (error) {
      stop(error);
    } finally {
      listening.stop();
      ending?.stop();
    }
  });
}
