import { expect, test } from 'bun:test';
import { replayThenLive } from './listen';
import type { Listening } from './pubsub';
import { SlowSubscriberError, SUBSCRIBER_QUEUE_LIMIT } from './pubsub';

/** A hand-driven live source: `emit` delivers to whoever listens; `listeners` counts them. */
function liveSource() {
  const listeners = new Set<(id: number) => void>();
  let confirm: () => void = () => {};
  const ready = new Promise<void>((resolve) => (confirm = resolve));
  return {
    listeners,
    confirm: () => confirm(),
    emit: (id: number) => listeners.forEach((listener) => listener(id)),
    listen: (onEvent: (id: number) => void): Listening => {
      listeners.add(onEvent);
      return { ready, stop: () => listeners.delete(onEvent) };
    },
  };
}

async function take(iterator: AsyncIterator<number>, count: number): Promise<number[]> {
  const values: number[] = [];
  while (values.length < count) values.push((await iterator.next()).value as number);
  return values;
}

test('de-duplicates by what was replayed, not by id order: a lower live id arriving late is kept', async () => {
  const source = liveSource();
  source.confirm();
  const stream = replayThenLive(
    source.listen,
    () => [5, 6, 7],
    (id) => id,
  );
  const replayed = take(stream, 3);
  expect(await replayed).toEqual([5, 6, 7]);
  source.emit(6); // already replayed: dropped
  source.emit(4); // committed late, below the last replayed id: kept
  source.emit(8);
  expect(await take(stream, 2)).toEqual([4, 8]);
  await stream.return();
  expect(source.listeners.size).toBe(0);
});

test('events published while the replay is read come after it, once', async () => {
  const source = liveSource();
  source.confirm();
  let readEarlier: (ids: number[]) => void = () => {};
  const { promise: replayStarted, resolve: started } = Promise.withResolvers<void>();
  const replay = () => {
    started();
    return new Promise<number[]>((resolve) => (readEarlier = resolve));
  };
  const stream = replayThenLive(source.listen, replay, (id) => id);
  const values = take(stream, 3);
  await replayStarted;
  source.emit(2); // in the replay too
  source.emit(3); // only live
  readEarlier([1, 2]);
  expect(await values).toEqual([1, 2, 3]);
  await stream.return();
});

test('the replay is read only once listening is confirmed', async () => {
  const source = liveSource();
  let reads = 0;
  const stream = replayThenLive(source.listen, () => (reads++, [1]));
  const first = stream.next();
  await Promise.resolve();
  await Promise.resolve();
  expect(reads).toBe(0);
  source.confirm();
  expect((await first).value).toBe(1);
  expect(reads).toBe(1);
  await stream.return();
});

test('released on every path: returned before start, during the replay, and when the replay fails', async () => {
  const source = liveSource();
  source.confirm();
  await replayThenLive(source.listen, () => [1]).return();
  expect(source.listeners.size).toBe(0);

  const slowReplay = replayThenLive(source.listen, () => new Promise<number[]>(() => {}));
  const pending = slowReplay.next();
  await Promise.resolve();
  expect(source.listeners.size).toBe(1);
  await slowReplay.return();
  expect((await pending).done).toBe(true);
  expect(source.listeners.size).toBe(0);

  const failing = replayThenLive(source.listen, () => Promise.reject(new Error('database gone')));
  const failure = await failing.next().catch((error: unknown) => error);
  expect((failure as Error).message).toBe('database gone');
  expect((await failing.next()).done).toBe(true);
  expect(source.listeners.size).toBe(0);
});

test('a reader that stops reading is ended with SlowSubscriberError and released', async () => {
  const source = liveSource();
  source.confirm();
  const stream = replayThenLive(source.listen, () => [0]);
  expect((await stream.next()).value).toBe(0);
  for (let id = 1; id <= SUBSCRIBER_QUEUE_LIMIT + 10; id++) source.emit(id);
  let error: unknown;
  try {
    for (;;) if ((await stream.next()).done) break;
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(SlowSubscriberError);
  expect(source.listeners.size).toBe(0);
});

test('a replay longer than a subscriber may leave unread goes whole, in order, then live events', async () => {
  const source = liveSource();
  source.confirm();
  const length = SUBSCRIBER_QUEUE_LIMIT * 2 + 5;
  const earlier = Array.from({ length }, (_, index) => index + 1);
  const stream = replayThenLive(
    source.listen,
    () => earlier,
    (id) => id,
  );
  const firstSlice = take(stream, SUBSCRIBER_QUEUE_LIMIT);
  source.emit(length); // replayed already: dropped
  source.emit(length + 1); // held until the replay is read
  expect(await firstSlice).toEqual(earlier.slice(0, SUBSCRIBER_QUEUE_LIMIT));
  expect(await take(stream, length - SUBSCRIBER_QUEUE_LIMIT + 1)).toEqual([...earlier.slice(SUBSCRIBER_QUEUE_LIMIT), length + 1]);
  await stream.return();
  expect(source.listeners.size).toBe(0);
});
