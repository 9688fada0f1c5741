import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, signUp, storedFiles, type TestApp, type TestUser } from './support/app';
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
    admission.admit = (upload, read) => {
      admission.admit = admit;
      const turn = admit(upload, read);
      resolve();
      return turn;
    };
  });
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
    const before = await storedFiles(t);
    const refusalsBefore = await uploadRefusals(t);

    const refused = await sendFile(t, alice, chatId);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await refused.json()) as { detail: string }).detail).toContain('Too many uploads');
    const avatar = await t.request('/api/auth/me/avatar', { method: 'PUT', token: alice.token, headers: { 'content-type': 'image/png' }, body: media.png() });
    expect(avatar.status).toBe(503);
    expect(avatar.headers.get('retry-after')).toBeTruthy();
    expect(await storedFiles(t)).toEqual(before);
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

    const before = await storedFiles(t);
    running.fail();
    expect((await runningAnswer).status).toBeGreaterThanOrEqual(400);
    expect(await storedFiles(t)).toEqual(before);
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
    const before = await storedFiles(t);
    const late = await sendFile(t, alice, chatId);
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBeTruthy();
    expect(await storedFiles(t)).toEqual(before);
    expect(t.app.services.attachments.admission.queued).toBe(0);
    running.finish();
    expect((await runningAnswer).status).toBe(201);
    expect((await sendFile(t, alice, chatId)).status).toBe(201);
  } finally {
    await t.cleanup();
  }
}, 30_000);

/**
 * A client over a raw socket that sends the request's head and `burst` of its body at once, then a
 * byte every few milliseconds (of a body it declared far longer) until the server answers or hangs
 * up: a trickle that Bun's idle timeout never ends. Resolves with what the server sent back.
 */
async function trickle(port: number, path: string, token: string, burst: Uint8Array): Promise<string> {
  const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\nContent-Type: text/plain\r\n\r\n`);
  const request = Buffer.concat([
    Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${head.length + burst.length + 1_000_000}\r\n\r\n`,
    ),
    head,
    burst,
  ]);
  let answer = '';
  let unsent: Buffer = request;
  let hungUp!: () => void;
  const closed = new Promise<void>((resolve) => (hungUp = resolve));
  const send = (socket: Bun.Socket) => {
    // A write takes what the socket buffer has room for; `drain` says when to send the rest.
    unsent = unsent.subarray(socket.write(unsent));
  };
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data: (_socket, data) => void (answer += data.toString()),
      drain: send,
      close: () => hungUp(),
      error: () => hungUp(),
    },
  });
  send(socket);
  const drip = setInterval(() => {
    if (unsent.length === 0) socket.write('a');
  }, 10);
  try {
    await closed;
  } finally {
    clearInterval(drip);
  }
  return answer;
}

async function refusalsOf(t: TestApp, kind: string): Promise<number> {
  const text = await (await t.request('/metrics')).text();
  return Number(new RegExp(`gemini_coop_rate_limit_refusals_total\\{kind="${kind}"\\} (\\d+)`).exec(text)?.[1] ?? Number.NaN);
}

describe('an upload must keep arriving at UPLOAD_MIN_BYTES_PER_SECOND', () => {
  test('a trickle over a real socket holding the only slot is ended with 408, its slot goes to the waiting upload, and nothing of it is stored', async () => {
    // A window of 100 ms must bring 100 KiB: the burst (past the 64 KiB read before anything is stored) is short of it.
    const t = await createTestApp({
      MAX_CONCURRENT_UPLOADS: '1',
      UPLOAD_QUEUE_WAIT_MS: '9000',
      UPLOAD_MIN_BYTES_PER_SECOND: String(1024 * 1024),
      UPLOAD_MIN_RATE_WINDOW_MS: '100',
    });
    const server = t.listen();
    try {
      const { alice, chatId } = await room(t);
      const before = await storedFiles(t);
      const refusalsBefore = await refusalsOf(t, 'upload_too_slow');
      const admitted = nextAdmission(t);
      const slow = trickle(server.port!, `/api/chats/${chatId}/attachments`, alice.token, new Uint8Array(80 * 1024).fill(0x61));
      await admitted;
      expect(t.app.services.attachments.admission.inFlight).toBe(1);
      const queued = nextAdmission(t);
      const waiting = sendFile(t, alice, chatId);
      await queued;
      expect(t.app.services.attachments.admission.queued).toBe(1);

      const answer = await slow;
      expect(answer).toStartWith('HTTP/1.1 408');
      expect(answer).toContain('"detail":"The upload arrived too slowly');
      // Else the trickle would go on, on a connection nobody reads, until Bun's idle timeout.
      expect(answer).toContain('Connection: close');
      const next = await waiting;
      expect(next.status).toBe(201);
      expect(await storedFiles(t)).toEqual({ rows: before.rows + 1, files: before.files + 1 });
      expect(await refusalsOf(t, 'upload_too_slow')).toBe(refusalsBefore + 1);
      expect(t.app.services.attachments.admission.inFlight).toBe(0);
      expect(t.app.services.attachments.admission.queued).toBe(0);
    } finally {
      await server.stop(true);
      await t.cleanup();
    }
  }, 30_000);

  test('a fast client over a real socket is not cut, however short the window', async () => {
    const t = await createTestApp({ UPLOAD_MIN_RATE_WINDOW_MS: '100' });
    const server = t.listen();
    try {
      const { alice, chatId } = await room(t);
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(4 * 1024 * 1024).fill(0x61)], { type: 'text/plain' }), 'fast.txt');
      const answer = await fetch(`http://127.0.0.1:${server.port}/api/chats/${chatId}/attachments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.token}` },
        body: form,
      });
      expect(answer.status).toBe(201);
      expect(await answer.json()).toMatchObject({ size: 4 * 1024 * 1024, kind: 'file' });
      expect(await refusalsOf(t, 'upload_too_slow')).toBe(0);
    } finally {
      await server.stop(true);
      await t.cleanup();
    }
  }, 30_000);
});
