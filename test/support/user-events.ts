import type { PubSub, UserEvent } from '../../src/services/pubsub';
import { withDeadline } from './sockets';

let markers = 0;

/**
 * Records what is published to one user's `user:event` topic from now on, as every transport would
 * receive it (across Redis too): what the app published before the call but Redis delivers after it
 * (its publishes of one turn go out together at the end of the turn) is left out, found by a first
 * marker. `settled()` publishes a marker on the same topic through the same bus and
 * waits for it: one publisher's events on one channel arrive in order, so everything the app
 * published before the call has arrived by then, and "nothing was pushed" can be asserted
 * without a sleep.
 * @example const jane = await recordUserEvents(t.app.services.pubsub, janeId); …; expect(await jane.settled()).toEqual([])
 */
export async function recordUserEvents(pubsub: PubSub, userId: number) {
  const events: UserEvent[] = [];
  const waiting = new Map<number, () => void>();
  const listening = pubsub.on('user:event', userId, (event) => {
    // Markers carry a chat id no chat has.
    if (event.type === 'left_chat' && event.chatId < 0) waiting.get(event.chatId)?.();
    else events.push(event);
  });
  await listening.ready;
  const recorder = {
    events,
    /** Every event published to the user so far (once it has arrived), in order. */
    async settled(): Promise<UserEvent[]> {
      const marker = -++markers;
      const arrived = new Promise<void>((resolve) => waiting.set(marker, resolve));
      pubsub.publish('user:event', userId, { type: 'left_chat', chatId: marker });
      await withDeadline(arrived, () => `the marker published to user ${userId} never arrived; events so far: ${JSON.stringify(events)}`);
      waiting.delete(marker);
      return events;
    },
    stop: () => listening.stop(),
  };
  await recorder.settled();
  events.length = 0;
  return recorder;
}

export type UserEventRecorder = Awaited<ReturnType<typeof recordUserEvents>>;
