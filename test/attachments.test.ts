import { describe, expect, test } from 'bun:test';
import { signature } from '../src/services/attachments/links';
import { createTestApp, signUp, storedFiles, type TestApp, type TestUser } from './support/app';
import { media } from './support/media';
import { servedTestApp } from './support/sockets';

/**
 * Attachments: upload (type from the bytes, size cap while streaming, every refusal storing
 * nothing), download (signed link or bearer, headers, ranges), sending on REST, /ws and GraphQL,
 * and the files' end with their message, their chat, or the sweep.
 */

const MAX = 4096;
const served = servedTestApp({ MAX_UPLOAD_BYTES: String(MAX) });

async function room(t: TestApp) {
  const alice = await signUp(t);
  const bob = await signUp(t);
  const eve = await signUp(t);
  const chat = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'files', participant_usernames: [bob.username] } });
  const { id } = (await chat.json()) as { id: number };
  return { alice, bob, eve, chatId: id };
}

function upload(t: TestApp, user: TestUser, chatId: number, file: Uint8Array, { name = 'file.bin', type = '' } = {}) {
  const form = new FormData();
  form.append('note', 'fields before the file are skipped');
  form.append('file', new Blob([new Uint8Array(file)], { type }), name);
  return t.request(`/api/chats/${chatId}/attachments`, { method: 'POST', token: user.token, body: form });
}

async function uploaded(t: TestApp, user: TestUser, chatId: number, file: Uint8Array, options?: { name?: string; type?: string }) {
  const response = await upload(t, user, chatId, file, options);
  const body = await response.json();
  if (response.status !== 201) throw new Error(`upload failed: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

describe('upload', () => {
  test('a PNG is stored with its type, kind and size from its bytes, and its signed url serves it with the right headers', async () => {
    const t = served.t;
    const { alice, chatId } = await room(t);
    const png = media.png(640, 480, 300);
    const body = await uploaded(t, alice, chatId, png, { name: 'whiteboard photo.png', type: 'image/png' });
    expect(body).toMatchObject({
      filename: 'whiteboard photo.png',
      content_type: 'image/png',
      size: 300,
      kind: 'image',
      width: 640,
      height: 480,
      duration_ms: null,
    });
    expect(body.url).toMatch(new RegExp(`^/api/attachments/${body.id}/content\\?expires=\\d+&signature=`));

    const download = await t.request(body.url);
    expect(download.status).toBe(200);
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(png);
    expect(download.headers.get('content-type')).toBe('image/png');
    expect(download.headers.get('content-length')).toBe('300');
    expect(download.headers.get('content-disposition')).toBe(`inline; filename="whiteboard photo.png"; filename*=UTF-8''whiteboard%20photo.png`);
    expect(download.headers.get('x-content-type-options')).toBe('nosniff');
    expect(download.headers.get('content-security-policy')).not.toContain('sandbox');
  });

  test.each([
    ['voice.webm', media.webm(), 'audio/webm', 'audio', 'audio/webm;codecs=opus'],
    ['voice.ogg', media.ogg(), 'audio/ogg', 'audio', 'audio/ogg'],
    ['song.mp3', media.mp3(), 'audio/mpeg', 'audio', 'audio/mpeg'],
    ['memo.m4a', media.m4a(), 'audio/mp4', 'audio', 'audio/x-m4a'],
    ['photo.jpg', media.jpeg(800, 600), 'image/jpeg', 'image', 'image/jpeg'],
    ['anim.gif', media.gif(), 'image/gif', 'image', ''],
    ['pic.webp', media.webp(), 'image/webp', 'image', 'image/webp'],
    ['report.pdf', media.pdf(), 'application/pdf', 'pdf', 'application/pdf'],
    ['notes.txt', media.text(), 'text/plain; charset=utf-8', 'file', 'text/plain'],
  ])('%s is accepted as %s', async (name, file, contentType, kind, claimed) => {
    const { alice, chatId } = await room(served.t);
    expect(await uploaded(served.t, alice, chatId, file, { name, type: claimed })).toMatchObject({ content_type: contentType, kind, size: file.length });
  });

  test('a WAV says its duration', async () => {
    const { alice, chatId } = await room(served.t);
    expect(await uploaded(served.t, alice, chatId, media.wav(150), { name: 'a.wav' })).toMatchObject({ kind: 'audio', duration_ms: 150 });
  });

  test.each([
    ['voice.ogg', media.oggOpus({ durationMs: 1500 }), 1500],
    ['song.ogg', media.oggVorbis({ durationMs: 2000 }), 2000],
    ['song.mp3', media.mp3Xing({ frames: 100 }), 2612],
    ['memo.m4a', media.m4aWithDuration({ timescale: 1000, duration: 3250, moovLast: true }), 3250],
    ['clip.webm', media.webmRecorded({ duration: 800 }), 800],
    ['recorded.webm', media.webmRecorded(), null],
  ])('%s says its duration as its container states it (read back from the stored file)', async (name, file, durationMs) => {
    const { alice, chatId } = await room(served.t);
    expect(await uploaded(served.t, alice, chatId, file, { name })).toMatchObject({ kind: 'audio', size: file.length, duration_ms: durationMs });
  });

  test('a PDF or text download is an attachment under a sandboxing CSP', async () => {
    const { alice, chatId } = await room(served.t);
    const { url } = await uploaded(served.t, alice, chatId, media.pdf(), { name: 'r.pdf' });
    const download = await served.t.request(url);
    expect(download.headers.get('content-disposition')).toStartWith('attachment;');
    expect(download.headers.get('content-security-policy')).toContain('sandbox');
  });

  test.each([
    ['too large', () => media.png(1, 1, MAX + 1), {}, 413],
    ['not on the allow-list', media.exe, {}, 415],
    ['an SVG', media.svg, { name: 'x.svg', type: 'image/svg+xml' }, 415],
    ['a type that lies', () => media.pdf(), { name: 'x.png', type: 'image/png' }, 415],
    ['zero bytes', () => new Uint8Array(), {}, 422],
    ['a path in the filename', () => media.png(), { name: '../../etc/passwd.png' }, 422],
    ['a Windows path in the filename', () => media.png(), { name: 'C:\\photos\\x.png' }, 422],
  ])('%s is refused with a clear 4xx and stores nothing', async (_case, file, options, status) => {
    const t = served.t;
    const { alice, chatId } = await room(t);
    const before = await storedFiles(t);
    const response = await upload(t, alice, chatId, file(), options);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { detail: unknown }).detail).toBeTruthy();
    expect(await storedFiles(t)).toEqual(before);
  });

  test('a non-participant cannot upload; nor can a request without a multipart file', async () => {
    const t = served.t;
    const { eve, alice, chatId } = await room(t);
    expect((await upload(t, eve, chatId, media.png())).status).toBe(403);
    const json = await t.request(`/api/chats/${chatId}/attachments`, { method: 'POST', token: alice.token, json: { file: 'x' } });
    expect(json.status).toBe(400);
  });

  test('the cap holds while streaming: an endless upload is cut off after MAX_UPLOAD_BYTES, not read to its end', async () => {
    const t = served.t;
    const { alice, chatId } = await room(t);
    let pulled = 0;
    const head = new TextEncoder().encode('--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n');
    const line = new TextEncoder().encode('all work and no play\n'.repeat(50));
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(head),
      pull: (controller) => {
        pulled += line.length;
        controller.enqueue(line);
      },
    });
    const response = await t.request(`/api/chats/${chatId}/attachments`, {
      method: 'POST',
      token: alice.token,
      headers: { 'content-type': 'multipart/form-data; boundary=b' },
      body,
    });
    expect(response.status).toBe(413);
    expect(pulled).toBeLessThan(MAX + 2 * line.length);
  });
});

describe('download', () => {
  test('with a bearer token for participants only; a link that is tampered with or expired is refused', async () => {
    const t = served.t;
    const { alice, bob, eve, chatId } = await room(t);
    const { id, url } = await uploaded(t, alice, chatId, media.png());
    const path = `/api/attachments/${id}/content`;
    expect((await t.request(path, { token: bob.token })).status).toBe(200);
    expect((await t.request(path, { token: eve.token })).status).toBe(403);
    expect((await t.request(path)).status).toBe(401);
    expect((await t.request(`${url}x`)).status).toBe(403);
    expect((await t.request(url.replace(`/${id}/`, `/${id + 1}/`))).status).toBe(403);
    const past = Math.floor(Date.now() / 1000) - 10;
    expect((await t.request(`${path}?expires=${past}&signature=${signature(t.config.secretKey, id, past)}`)).status).toBe(403);
    expect((await t.request(`${path}?expires=${past + 7200}&signature=${signature('another secret', id, past + 7200)}`)).status).toBe(403);
    expect((await t.request('/api/attachments/999999/content', { token: bob.token })).status).toBe(404);
  });

  test('a Range is answered with 206 and just those bytes; one past the end with 416', async () => {
    const t = served.t;
    const { alice, chatId } = await room(t);
    const file = media.wav(100);
    const { url } = await uploaded(t, alice, chatId, file);
    const part = await t.request(url, { headers: { range: 'bytes=10-19' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${file.length}`);
    expect(part.headers.get('content-length')).toBe('10');
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(file.slice(10, 20));
    const suffix = await t.request(url, { headers: { range: 'bytes=-5' } });
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(file.slice(-5));
    const beyond = await t.request(url, { headers: { range: `bytes=${file.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${file.length}`);
  });
});

describe('sending', () => {
  test('REST: attachments with empty content; in the answer and in history; each used once, by its uploader, in its chat', async () => {
    const t = served.t;
    const { alice, bob, chatId } = await room(t);
    const photo = await uploaded(t, alice, chatId, media.png(), { name: 'a.png' });
    const voice = await uploaded(t, alice, chatId, media.ogg(), { name: 'v.ogg' });
    const sent = await t.request(`/api/chats/${chatId}/messages`, {
      method: 'POST',
      token: alice.token,
      json: { content: '', attachment_ids: [voice.id, photo.id] },
    });
    expect(sent.status).toBe(200);
    const message = await sent.json();
    expect(message.attachments.map((a: { id: number }) => a.id)).toEqual([voice.id, photo.id]);
    const history = (await (await t.request(`/api/chats/${chatId}/messages`, { token: bob.token })).json()) as any[];
    expect(history.at(-1).attachments.map((a: { filename: string }) => a.filename)).toEqual(['a.png', 'v.ogg']);
    expect((await t.request(history.at(-1).attachments[0].url)).status).toBe(200);

    const refused = async (user: TestUser, chat: number, ids: number[]) => {
      const response = await t.request(`/api/chats/${chat}/messages`, { method: 'POST', token: user.token, json: { content: 'x', attachment_ids: ids } });
      return response.status;
    };
    expect(await refused(alice, chatId, [photo.id])).toBe(422);
    const bobs = await uploaded(t, bob, chatId, media.png());
    expect(await refused(alice, chatId, [bobs.id])).toBe(422);
    const other = await room(t);
    const elsewhere = await uploaded(t, other.alice, other.chatId, media.png());
    expect(await refused(other.alice, chatId, [elsewhere.id])).toBe(403);
    const mine = await uploaded(t, alice, chatId, media.png());
    expect(await refused(alice, chatId, [mine.id, mine.id])).toBe(422);
    expect(await refused(alice, chatId, [elsewhere.id])).toBe(422);
    const empty = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content: ' ' } });
    expect(empty.status).toBe(422);
  });

  test('/ws: a message frame with attachment_ids reaches the room with them, flat and nested', async () => {
    const t = served.t;
    const { alice, bob, chatId } = await room(t);
    const photo = await uploaded(t, alice, chatId, media.png(), { name: 'p.png' });
    const bobSocket = served.kit.chat(bob.token);
    await bobSocket.opened;
    await bobSocket.join(chatId);
    const aliceSocket = served.kit.chat(alice.token);
    await aliceSocket.opened;
    aliceSocket.send({ type: 'message', chat_id: chatId, attachment_ids: [photo.id] });
    const frame = await bobSocket.next('message');
    expect(frame).toMatchObject({ content: '', message: { attachments: [{ id: photo.id, filename: 'p.png', kind: 'image' }] } });
    aliceSocket.send({ type: 'message', chat_id: chatId, attachment_ids: [photo.id] });
    expect((await aliceSocket.nextError()).error).toContain('cannot be sent here');
  });

  test('GraphQL: sendMessage(attachmentIds) and Message.attachments, in the answer and in the history', async () => {
    const t = served.t;
    const { alice, chatId } = await room(t);
    const photo = await uploaded(t, alice, chatId, media.png(64, 32));
    const gql = async (query: string, variables: Record<string, unknown>) =>
      await (await t.request('/graphql', { method: 'POST', token: alice.token, json: { query, variables } })).json();
    const sent = await gql(
      'mutation ($chatId: ID!, $ids: [ID!]) { sendMessage(chatId: $chatId, attachmentIds: $ids) { id content attachments { id kind width height url } } }',
      { chatId, ids: [String(photo.id)] },
    );
    expect(sent.data.sendMessage).toMatchObject({ content: '', attachments: [{ id: String(photo.id), kind: 'IMAGE', width: 64, height: 32 }] });
    const again = await gql('mutation ($chatId: ID!, $ids: [ID!]) { sendMessage(chatId: $chatId, attachmentIds: $ids) { id } }', {
      chatId,
      ids: [String(photo.id)],
    });
    expect(again.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    const history = await gql('query ($id: ID!) { chat(id: $id) { messages(last: 5) { edges { node { attachments { id filename } } } } } }', { id: chatId });
    expect(JSON.stringify(history)).toContain(`"id":"${photo.id}"`);
  });
});

describe("the files' end", () => {
  test('deleting a message deletes its files; deleting a chat deletes its files, sent or not', async () => {
    const t = served.t;
    const { alice, chatId } = await room(t);
    const before = await storedFiles(t);
    const sentFile = await uploaded(t, alice, chatId, media.png());
    const sent = (await (
      await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content: 'look', attachment_ids: [sentFile.id] } })
    ).json()) as { id: number };
    expect((await t.request(`/api/chats/${chatId}/messages/${sent.id}`, { method: 'DELETE', token: alice.token })).status).toBe(200);
    expect((await t.request(sentFile.url)).status).toBe(404);
    expect(await storedFiles(t)).toEqual(before);

    const kept = await uploaded(t, alice, chatId, media.png());
    await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content: 'x', attachment_ids: [kept.id] } });
    const unsent = await uploaded(t, alice, chatId, media.pdf());
    expect((await t.request(`/api/chats/${chatId}`, { method: 'DELETE', token: alice.token })).status).toBe(200);
    expect((await t.request(kept.url)).status).toBe(404);
    expect((await t.request(unsent.url)).status).toBe(404);
    expect(await storedFiles(t)).toEqual(before);
  });

  test('uploads never sent are swept after a day; sent ones and fresh ones stay', async () => {
    const t = served.t;
    const { alice, chatId } = await room(t);
    const old = await uploaded(t, alice, chatId, media.png());
    const fresh = await uploaded(t, alice, chatId, media.png());
    const sentOld = await uploaded(t, alice, chatId, media.png());
    await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content: 'x', attachment_ids: [sentOld.id] } });
    const dayAgo = new Date(Date.now() - 25 * 3600 * 1000);
    await t.app.services.db.attachment.updateMany({ where: { id: { in: [old.id, sentOld.id] } }, data: { createdAt: dayAgo } });
    expect(await t.app.services.attachments.sweep()).toBe(1);
    expect((await t.request(old.url)).status).toBe(404);
    expect((await t.request(fresh.url)).status).toBe(200);
    expect((await t.request(sentOld.url)).status).toBe(200);
  });
});

test('the default store is a folder beside the SQLite file; UPLOAD_DIR moves it', async () => {
  if (process.env.TEST_DATABASE_URL) return;
  const t = await createTestApp();
  try {
    expect(t.config.uploads).toEqual({
      maxBytes: 20 * 1024 * 1024,
      store: { kind: 'disk', dir: `${t.dir}/uploads` },
      concurrency: 4,
      queue: 32,
      queueWaitMs: 5000,
      pace: { minBytesPerSecond: 16384, windowMs: 5000 },
    });
  } finally {
    await t.cleanup();
  }
}, 30_000);
