import { describe, expect, test } from 'bun:test';
import { AppError } from '../errors';
import { UploadAdmission } from './upload-admission';

/** Reads that run until the test ends each, counting how many run at once. */
function readers() {
  let running = 0;
  let most = 0;
  const finishers: { finish: () => void; fail: (error: Error) => void }[] = [];
  const awaited: { count: number; resolve: () => void }[] = [];
  const read = () =>
    new Promise<string>((resolve, reject) => {
      running++;
      most = Math.max(most, running);
      for (const wait of awaited.filter((wait) => finishers.length + 1 >= wait.count)) wait.resolve();
      finishers.push({
        finish: () => {
          running--;
          resolve('read');
        },
        fail: (error) => {
          running--;
          reject(error);
        },
      });
    });
  /** Resolves once `count` reads have started in all. */
  const started = (count: number) => new Promise<void>((resolve) => (finishers.length >= count ? resolve() : awaited.push({ count, resolve })));
  return { read, finishers, started, running: () => running, most: () => most };
}

/** The admission's own work: these reads stand in for a body, so none is handed over and none is paced. */
const NO_BODY = { body: null };
const NO_PACE = { minBytesPerSecond: 0, windowMs: 1 };

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => null,
    (error: unknown) => error as AppError,
  );

describe('UploadAdmission', () => {
  test('at most `concurrency` bodies are read at once; the others wait and start, in order, as slots free', async () => {
    const admission = new UploadAdmission({ concurrency: 2, maxWaiting: 10, waitMs: 60_000, pace: NO_PACE });
    const work = readers();
    const uploads = Array.from({ length: 5 }, () => admission.admit(NO_BODY, work.read));
    await work.started(2);
    expect(work.running()).toBe(2);
    expect(admission.queued).toBe(3);
    for (let index = 0; index < 5; index++) {
      await work.started(Math.min(index + 2, 5));
      expect(work.running()).toBe(Math.min(2, 5 - index));
      work.finishers[index]!.finish();
      await uploads[index];
    }
    expect(await Promise.all(uploads)).toEqual(['read', 'read', 'read', 'read', 'read']);
    expect(work.most()).toBe(2);
    expect(admission.inFlight).toBe(0);
    expect(admission.queued).toBe(0);
  });

  test('a full queue refuses at once with 503 and a Retry-After, and counts the refusal', async () => {
    let refused = 0;
    const admission = new UploadAdmission({ concurrency: 1, maxWaiting: 1, waitMs: 60_000, pace: NO_PACE, onRefused: () => refused++ });
    const work = readers();
    const running = admission.admit(NO_BODY, work.read);
    const waiting = admission.admit(NO_BODY, work.read);
    await work.started(1);
    const error = await refusal(admission.admit(NO_BODY, work.read));
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', status: 503 });
    expect(error!.retryAfterSeconds).toBeGreaterThan(0);
    expect(refused).toBe(1);
    work.finishers[0]!.finish();
    await running;
    await work.started(2);
    work.finishers[1]!.finish();
    expect(await waiting).toBe('read');
  });

  test('a wait past the deadline is refused with 503 and leaves the queue', async () => {
    let refused = 0;
    const admission = new UploadAdmission({ concurrency: 1, maxWaiting: 5, waitMs: 1, pace: NO_PACE, onRefused: () => refused++ });
    const work = readers();
    const running = admission.admit(NO_BODY, work.read);
    expect(await refusal(admission.admit(NO_BODY, work.read))).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(admission.queued).toBe(0);
    expect(refused).toBe(1);
    await work.started(1);
    work.finishers[0]!.finish();
    await running;
    expect(admission.inFlight).toBe(0);
  });

  test('a client gone while it waits leaves the queue, and the slot it never had is not given back twice', async () => {
    const admission = new UploadAdmission({ concurrency: 1, maxWaiting: 5, waitMs: 60_000, pace: NO_PACE });
    const work = readers();
    const running = admission.admit(NO_BODY, work.read);
    const client = new AbortController();
    const gone = refusal(admission.admit({ body: null, signal: client.signal }, work.read));
    expect(admission.queued).toBe(1);
    client.abort();
    expect(await gone).toBeInstanceOf(AppError);
    expect(admission.queued).toBe(0);
    const next = admission.admit(NO_BODY, work.read);
    await work.started(1);
    work.finishers[0]!.finish();
    await running;
    await work.started(2);
    expect(admission.inFlight).toBe(1);
    work.finishers[1]!.finish();
    await next;
    expect(admission.inFlight).toBe(0);
    expect(await refusal(admission.admit({ body: null, signal: AbortSignal.abort() }, work.read))).toBeInstanceOf(AppError);
    expect(admission.inFlight).toBe(0);
  });

  test('a read that fails gives its slot back to the next upload', async () => {
    const admission = new UploadAdmission({ concurrency: 1, maxWaiting: 5, waitMs: 60_000, pace: NO_PACE });
    const work = readers();
    const failing = refusal(admission.admit(NO_BODY, work.read));
    const next = admission.admit(NO_BODY, work.read);
    await work.started(1);
    work.finishers[0]!.fail(new Error('the client closed the connection'));
    expect(await failing).toMatchObject({ message: 'the client closed the connection' });
    await work.started(2);
    expect(work.most()).toBe(1);
    work.finishers[1]!.finish();
    expect(await next).toBe('read');
    expect(admission.inFlight).toBe(0);
  });
});
