import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readdirSync } from 'node:fs';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { media } from './support/media';

/**
 * Upload admission: at most MAX_CONCURRENT_UPLOADS bodies are read at once (attachments and avatars
 * together), the others wait their turn in a bounded queue for at most UPLOAD_QUEUE_WAIT_MS, and a
 * refused upload is a 503 with `Retry-After` that stored nothing. Every way an upload ends gives its
 * turn back.
 */

const BOUNDARY = 'held-upload';

/**
 * An upload whose body the test controls: it counts the reads of its body (none before its turn),
 * hands over its head on the first, and its end only once `finish()` (or its failure on `fail()`).
 */
function controlledUpload(file: Uint8Array = media.png()) {
  let reads = 0;
  let firstRead!: () => void;
  const reading = new Promise<void>((resolve) => (firstRead = resolve));
  let end!: (outcome: 'finish' | Error) => void;
  const ended = new Promise<'finish' | Error>((resolve) => (end = resolve));
  const head = Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="held.png"\r\nContent-Type: image/png\r\n\r\n`),
    file,
  ]);
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        reads++;
        if (reads === 1) {
          controller.enqueue(new Uint8Array(head));
          firstRead();
          return;
        }
        const outcome = await ended;
        if (outcome instanceof Error) return controller.error(outcome);
        controller.enqueue(new TextEncoder().encode(`\r\n--${BOUNDARY}--\r\n`));
        controller.close();
      },
    },
    { highWaterMark: 0 },
  );
  return {
    body,
    headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
    /** Resolves once the server started reading this body (its turn came). */
    reading,
    reads: () => reads,
    finish: () => end('finish'),
    /** The connection broke mid-body, as Bun reports a client gone while its upload streams. */
    fail: () => end(new DOMException('The connection was closed.', 'AbortError')),
  };
}

async function room(t: TestApp) {
  const alice = await signUp(t);
  const chat = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'files' } });
  return { alice, chatId: ((await chat.json()) as { id: number }).id };
}

function send(t: TestApp, user: TestUser, chatId: number, upload: ReturnType<typeof controlledUpload>, signal?: AbortSignal) {
  return t.request(`/api/chats/${chatId}/attachments`, { method: 'POST', token: user.token, headers: upload.headers, body: upload.body, signal });
}

function sendFile(t: TestApp, user: TestUser, chatId: number) {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(media.png())]), 'later.png');
  return t.request(`/api/chats/${chatId}/attachments`, { method: 'POST', token: user.token, body: form });
}

/** Resolves once the next upload has asked for its turn (and, if it must wait, is queued). */
function nextAdmission(t: TestApp): Promise<void> {
  const admission = t.app.services.attachments.admission;
  const admit = admission.admit.bind(admission);
  return new Promise((resolve) => {
    admission.admit = (signal, read) => {
      admission.admit = admit;
      const turn = admit(signal, read);
      resolve();
      return turn;
    };
  });
}

async function stored(t: TestApp) {
  const rows = await t.app.services.db.attachment.count();
  const store = t.config.uploads.store;
  const files = store.kind === 'disk' ? readdirSync(store.dir).length : (await t.app.services.db.fileChunk.groupBy({ by: ['key'] })).length;
  return { rows, files };
}

async function uploadRefusals(t: TestApp): Promise<number> {
  const text = await (await t.request('/metrics')).text();
  return Number(/gemini_coop_rate_limit_refusals_total\{kind="upload_queue"\} (\d+)/.exec(text)?.[1] ?? Number.NaN);
}

describe('one upload read at a time, one waiting', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ MAX_CONCURRENT_UPLOADS: '1', UPLOAD_QUEUE: '1', UPLOAD_QUEUE_WAIT_MS: '9000' });
  });
  afterAll(() => t.cleanup());

  test('a waiting upload is not read until the running one ends, then it is stored', async () => {
    const { alice, chatId } = await room(t);
    const first = controlledUpload();
    const second = controlledUpload(media.png(32, 32));
    const firstAnswer = send(t, alice, chatId, first);
    await first.reading;
    const queued = nextAdmission(t);
    const secondAnswer = send(t, alice, chatId, second);
    await queued;
    expect(second.reads()).toBe(0);
    expect(t.app.services.attachments.admission.queued).toBe(1);
    first.finish();
    expect((await firstAnswer).status).toBe(201);
    await second.reading;
    second.finish();
    const answer = await secondAnswer;
    expect(answer.status).toBe(201);
    expect(await answer.json()).toMatchObject({ width: 32, height: 32 });
    expect(t.app.services.attachments.admission.inFlight).toBe(0);
  });

  test('past the queue an upload (attachment or avatar) is refused at once with 503 and Retry-After, storing nothing', async () => {
    const { alice, chatId } = await room(t);
    const running = controlledUpload();
    const waiting = controlledUpload();
    const runningAnswer = send(t, alice, chatId, running);
    await running.reading;
    const queued = nextAdmission(t);
    const waitingAnswer = send(t, alice, chatId, waiting);
    await queued;
    const before = await stored(t);
    const refusalsBefore = await uploadRefusals(t);

    const refused = await sendFile(t, alice, chatId);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await refused.json()) as { detail: string }).detail).toContain('Too many uploads');
    const avatar = await t.request('/api/auth/me/avatar', { method: 'PUT', token: alice.token, headers: { 'content-type': 'image/png' }, body: media.png() });
    expect(avatar.status).toBe(503);
    expect(avatar.headers.get('retry-after')).toBeTruthy();
    expect(await stored(t)).toEqual(before);
    expect(await uploadRefusals(t)).toBe(refusalsBefore + 2);

    running.finish();
    await waiting.reading;
    waiting.finish();
    expect([(await runningAnswer).status, (await waitingAnswer).status]).toEqual([201, 201]);
  });

  test('a client gone while it waits leaves the queue, and one gone mid-body gives its turn back', async () => {
    const { alice, chatId } = await room(t);
    const running = controlledUpload();
    const runningAnswer = send(t, alice, chatId, running);
    await running.reading;
    const client = new AbortController();
    const abandoned = controlledUpload();
    const queued = nextAdmission(t);
    const abandonedAnswer = send(t, alice, chatId, abandoned, client.signal);
    await queued;
    expect(t.app.services.attachments.admission.queued).toBe(1);
    client.abort();
    await abandonedAnswer;
    expect(t.app.services.attachments.admission.queued).toBe(0);
    expect(abandoned.reads()).toBe(0);

    const before = await stored(t);
    running.fail();
    expect((await runningAnswer).status).toBeGreaterThanOrEqual(400);
    expect(await stored(t)).toEqual(before);
    expect(t.app.services.attachments.admission.inFlight).toBe(0);
    expect((await sendFile(t, alice, chatId)).status).toBe(201);
  });
});

test('an upload that waited past UPLOAD_QUEUE_WAIT_MS is refused with 503 and Retry-After, and the queue is empty again', async () => {
  const t = await createTestApp({ MAX_CONCURRENT_UPLOADS: '1', UPLOAD_QUEUE: '4', UPLOAD_QUEUE_WAIT_MS: '1' });
  try {
    const { alice, chatId } = await room(t);
    const running = controlledUpload();
    const runningAnswer = send(t, alice, chatId, running);
    await running.reading;
    const before = await stored(t);
    const late = await sendFile(t, alice, chatId);
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBeTruthy();
    expect(await stored(t)).toEqual(before);
    expect(t.app.services.attachments.admission.queued).toBe(0);
    running.finish();
    expect((await runningAnswer).status).toBe(201);
    expect((await sendFile(t, alice, chatId)).status).toBe(201);
  } finally {
    await t.cleanup();
  }
}, 30_000);
