import { expect, test } from 'bun:test';
import { captureLogs } from '../../test/support/logs';
import { messageEvent } from '../../test/support/message-event';
import { Metrics } from '../metrics';
import type { MessageEvent } from './pubsub';
import { canForward, createEventBus, SlowSubscriberError, SUBSCRIBER_QUEUE_LIMIT } from './pubsub';

const message = (id: number) => messageEvent(id);

/** The in-memory bus, with the errors it logs. */
async function localBus() {
  const errors = captureLogs('error');
  const { pubsub } = await createEventBus(null, '', errors.log, new Metrics());
  return { pubsub, errors };
}

test('a listener that throws is logged and never stops the others nor the publisher', async () => {
  const { pubsub, errors } = await localBus();
  const received: number[] = [];
  pubsub.on('chat:message', 1, () => {
    throw new Error('a broken listener');
  });
  pubsub.on('chat:message', 1, (event) => received.push(event.id));
  pubsub.publish('chat:message', 1, message(1));
  pubsub.publish('chat:message', 1, message(2));
  expect(received).toEqual([1, 2]);
  expect(errors.lines().map((line) => line.err?.message)).toEqual(['a broken listener', 'a broken listener']);
});

test('a subscriber nobody reads is ended with SlowSubscriberError and released; the others get everything', async () => {
  const { pubsub } = await localBus();
  const unread = pubsub.subscribe('chat:message', 1);
  const first = unread.next();
  const received: number[] = [];
  pubsub.on('chat:message', 1, (event) => received.push(event.id));
  const total = SUBSCRIBER_QUEUE_LIMIT + 100;
  for (let id = 1; id <= total; id++) pubsub.publish('chat:message', 1, message(id));
  expect(received).toHaveLength(total);
  // The one event it took, then the queue up to the limit, then the error.
  expect(((await first).value as MessageEvent).id).toBe(1);
  let error: unknown;
  try {
    for (;;) if ((await unread.next()).done) break;
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(SlowSubscriberError);
  expect(pubsub.listenerCount()).toBe(1);
});

test('a subscription returned before its first next() never listens; one returned after is released', async () => {
  const { pubsub } = await localBus();
  const neverStarted = pubsub.subscribe('chat:message', 1);
  await neverStarted.return();
  expect(pubsub.listenerCount()).toBe(0);

  const started = pubsub.subscribe('chat:message', 1);
  const pending = started.next();
  expect(pubsub.listenerCount()).toBe(1);
  await started.return();
  expect((await pending).done).toBe(true);
  expect(pubsub.listenerCount()).toBe(0);
});

test('stop() is idempotent and only removes its own listener', async () => {
  const { pubsub } = await localBus();
  const a = pubsub.on('chat:typing', 1, () => {});
  pubsub.on('chat:typing', 1, () => {});
  a.stop();
  a.stop();
  expect(pubsub.listenerCount()).toBe(1);
});

test('one listener can serve many ids: each event comes with its id, and unlisten takes it off one id only', async () => {
  const { pubsub } = await localBus();
  const received: [number, number][] = [];
  const listener = (event: MessageEvent, chatId: number) => received.push([chatId, event.id]);
  for (const chatId of [1, 2]) await pubsub.listen('chat:message', chatId, listener);
  pubsub.publish('chat:message', 1, message(10));
  pubsub.publish('chat:message', 2, message(20));
  pubsub.unlisten('chat:message', 1, listener);
  pubsub.unlisten('chat:message', 1, listener);
  pubsub.publish('chat:message', 1, message(11));
  pubsub.publish('chat:message', 2, message(21));
  // The same id on another topic is another channel.
  pubsub.publish('chat:change', 2, { kind: 'deleted', chatId: 2, messageId: 21 });
  expect(received).toEqual([
    [1, 10],
    [2, 20],
    [2, 21],
  ]);
  expect(pubsub.listenerCount()).toBe(1);
  pubsub.unlisten('chat:message', 2, listener);
  expect(pubsub.listenerCount()).toBe(0);
});

test('a forwarding subscriber gets what was queued, then each event within its publish, and hears the end once', async () => {
  const { pubsub } = await localBus();
  const stream = pubsub.subscribe('chat:message', 1);
  if (!canForward(stream)) throw new Error('a subscription can forward');
  const first = stream.next();
  pubsub.publish('chat:message', 1, message(1));
  pubsub.publish('chat:message', 1, message(2));
  expect(((await first).value as MessageEvent).id).toBe(1);
  const forwarded: number[] = [];
  const ends: (Error | null)[] = [];
  stream.forward(
    (event) => forwarded.push(event.id),
    (failure) => ends.push(failure),
  );
  expect(forwarded).toEqual([2]);
  pubsub.publish('chat:message', 1, message(3));
  // No promise in between: the event is handed over inside the publish.
  expect(forwarded).toEqual([2, 3]);
  await stream.return();
  await stream.return();
  pubsub.publish('chat:message', 1, message(4));
  expect(forwarded).toEqual([2, 3]);
  expect(ends).toEqual([null]);
  expect(pubsub.listenerCount()).toBe(0);
});

test('a forwarding subscriber whose stream already ended hears it at once, with its error', async () => {
  const { pubsub } = await localBus();
  const stream = pubsub.subscribe('chat:message', 1);
  if (!canForward(stream)) throw new Error('a subscription can forward');
  const first = stream.next();
  for (let id = 1; id <= SUBSCRIBER_QUEUE_LIMIT + 2; id++) pubsub.publish('chat:message', 1, message(id));
  await first;
  const forwarded: number[] = [];
  const ends: (Error | null)[] = [];
  stream.forward(
    (event) => forwarded.push(event.id),
    (failure) => ends.push(failure),
  );
  expect(forwarded).toHaveLength(SUBSCRIBER_QUEUE_LIMIT);
  expect(ends).toHaveLength(1);
  expect(ends[0]).toBeInstanceOf(SlowSubscriberError);
  expect(pubsub.listenerCount()).toBe(0);
});
