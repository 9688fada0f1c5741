import { afterEach, describe, expect, test } from 'bun:test';
import type { AppError } from '../errors';
import { PaceWindow, pacedBody } from './upload-pace';

const PACE = { minBytesPerSecond: 1000, windowMs: 100 };
/** PACE's share of one window. */
const PER_WINDOW = 100;

describe('PaceWindow', () => {
  test('a window of waiting that brought the rate’s share passes, and the next one starts from nothing', () => {
    const window = new PaceWindow(PACE);
    expect(window.record(40, 60)).toBe(true);
    expect(window.remainingMs).toBe(60);
    expect(window.record(60, 40)).toBe(true);
    expect(window.remainingMs).toBe(100);
    // The bytes of the window before do not carry over.
    expect(window.record(100, PER_WINDOW - 1)).toBe(false);
  });

  test('bytes may come in bursts anywhere in the window: only the total at its end counts', () => {
    const window = new PaceWindow(PACE);
    expect(window.record(99, 0)).toBe(true);
    expect(window.record(1, PER_WINDOW)).toBe(true);
  });

  test('a window short of the rate fails however the waiting was split', () => {
    const window = new PaceWindow(PACE);
    for (let wait = 0; wait < 9; wait++) expect(window.record(10, 1)).toBe(true);
    expect(window.record(10, 1)).toBe(false);
  });
});

/** A body whose chunks the test hands over (`send`), counting cancels. */
function clientBody() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let cancels = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      start: (given) => {
        controller = given;
      },
      cancel: () => {
        cancels++;
      },
    },
    { highWaterMark: 0 },
  );
  return {
    stream,
    send: (bytes: number) => controller.enqueue(new Uint8Array(bytes)),
    end: () => controller.close(),
    fail: (error: Error) => controller.error(error),
    cancels: () => cancels,
  };
}

/** A clock the test moves. */
function fakeClock() {
  let at = 0;
  return { now: () => at, advance: (ms: number) => (at += ms) };
}

/** A client whose every chunk takes `afterMs` on `clock` to arrive, counted while the server waits for it; then the body ends. */
function scriptedBody(clock: ReturnType<typeof fakeClock>, chunks: { afterMs: number; bytes: number }[]) {
  let cancels = 0;
  let next = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        await Promise.resolve();
        const chunk = chunks[next++];
        if (!chunk) return controller.close();
        clock.advance(chunk.afterMs);
        controller.enqueue(new Uint8Array(chunk.bytes));
      },
      cancel: () => {
        cancels++;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, cancels: () => cancels };
}

/** Timers armed through setTimeout and not yet cleared or fired: pacedBody's must all be gone once a read ends. */
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
function countTimers() {
  const live = new Set<unknown>();
  globalThis.setTimeout = ((handler: () => void, ms?: number) => {
    const timer = realSetTimeout(() => {
      live.delete(timer);
      handler();
    }, ms);
    live.add(timer);
    return timer;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((timer: Timer | undefined) => {
    live.delete(timer);
    realClearTimeout(timer);
  }) as typeof clearTimeout;
  return () => live.size;
}
afterEach(() => {
  globalThis.setTimeout = realSetTimeout;
  globalThis.clearTimeout = realClearTimeout;
});

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => null,
    (error: unknown) => error as AppError,
  );

describe('pacedBody', () => {
  test('with no minimum rate the body is handed on as it is', () => {
    const { stream } = clientBody();
    expect(pacedBody(stream, { minBytesPerSecond: 0, windowMs: 100 })).toBe(stream);
  });

  test('chunks pass through as they are, not copied, and the end of the body ends the stream', async () => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const reader = pacedBody(new ReadableStream<Uint8Array>({ start: (given) => void (controller = given) }), PACE).getReader();
    const chunk = new Uint8Array([1, 2, 3]);
    const read = reader.read();
    controller.enqueue(chunk);
    expect((await read).value).toBe(chunk);
    const end = reader.read();
    controller.close();
    expect((await end).done).toBe(true);
  });

  test('time the server spends between reads (writing to its store) is not held against the client', async () => {
    const clock = fakeClock();
    const client = scriptedBody(
      clock,
      Array.from({ length: 20 }, () => ({ afterMs: 0, bytes: 1 })),
    );
    const live = countTimers();
    const reader = pacedBody(client.stream, PACE, undefined, clock.now).getReader();
    let received = 0;
    for (;;) {
      const read = await reader.read();
      if (read.done) break;
      received += read.value.length;
      // A byte per ten windows, but all of that time was the server's own.
      clock.advance(10 * PACE.windowMs);
    }
    expect(received).toBe(20);
    expect(client.cancels()).toBe(0);
    expect(live()).toBe(0);
  });

  test('a client that keeps the rate over many windows is never cut', async () => {
    const clock = fakeClock();
    const client = scriptedBody(
      clock,
      Array.from({ length: 50 }, () => ({ afterMs: PACE.windowMs / 2, bytes: PER_WINDOW / 2 })),
    );
    const body = await new Response(pacedBody(client.stream, PACE, undefined, clock.now)).bytes();
    expect(body.length).toBe(25 * PER_WINDOW);
    expect(client.cancels()).toBe(0);
  });

  test('a trickle is cut at the end of its first window short of the rate: 408, counted, the body cancelled, no timer left', async () => {
    const clock = fakeClock();
    const client = scriptedBody(clock, [
      { afterMs: 0, bytes: 10 },
      { afterMs: PACE.windowMs / 2, bytes: 1 },
      { afterMs: PACE.windowMs / 2, bytes: 1 },
      { afterMs: PACE.windowMs / 2, bytes: 1 },
    ]);
    const live = countTimers();
    let tooSlow = 0;
    const reader = pacedBody(client.stream, PACE, () => tooSlow++, clock.now).getReader();
    expect((await reader.read()).value?.length).toBe(10);
    expect((await reader.read()).value?.length).toBe(1);
    const error = await failure(reader.read());
    expect(error).toMatchObject({ code: 'REQUEST_TIMEOUT', status: 408 });
    expect(error?.message).toContain('UPLOAD_MIN_BYTES_PER_SECOND');
    expect(tooSlow).toBe(1);
    expect(client.cancels()).toBe(1);
    expect(live()).toBe(0);
  });

  test('a client that sends nothing more is cut when a window of waiting ends, without another chunk', async () => {
    const client = clientBody();
    const live = countTimers();
    let tooSlow = 0;
    const reader = pacedBody(client.stream, { minBytesPerSecond: 1000, windowMs: 5 }, () => tooSlow++).getReader();
    const error = await failure(reader.read());
    expect(error).toMatchObject({ code: 'REQUEST_TIMEOUT' });
    expect(tooSlow).toBe(1);
    expect(client.cancels()).toBe(1);
    expect(live()).toBe(0);
  });

  test('a client gone mid-body fails the read with its own error, and no timer is left', async () => {
    const client = clientBody();
    const live = countTimers();
    let tooSlow = 0;
    const reader = pacedBody(client.stream, PACE, () => tooSlow++).getReader();
    const read = failure(reader.read());
    client.fail(new Error('The connection was closed.'));
    expect((await read)?.message).toBe('The connection was closed.');
    expect(tooSlow).toBe(0);
    expect(live()).toBe(0);
  });
});
