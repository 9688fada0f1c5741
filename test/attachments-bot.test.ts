import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { buildContents, chooseMedia, contextWindow } from '../src/services/bot-context';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { DEFAULT_FAKE_GEMINI_API_KEY, startFakeGemini, type FakeGemini } from './support/fake-gemini';
import { media } from './support/media';

/**
 * The bot sees and hears: images, audio and PDFs of the room reach the model as inline data beside
 * their message's `username: text`, newest first within BOT_CONTEXT_BYTES, older ones as a note;
 * the stand-in refuses what real Gemini refuses.
 */

let fake: FakeGemini;
beforeAll(async () => {
  fake = await startFakeGemini();
}, 30_000);
afterAll(() => fake.stop());

async function roomWithBot(env: Record<string, string>) {
  const t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url, ...env });
  const alice = await signUp(t);
  const bob = await signUp(t);
  const created = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'see', participant_usernames: [bob.username] } });
  return { t, alice, bob, chatId: ((await created.json()) as { id: number }).id };
}

async function sendFile(t: TestApp, user: TestUser, chatId: number, content: string, file: Uint8Array, name: string) {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(file)]), name);
  const uploaded = (await (await t.request(`/api/chats/${chatId}/attachments`, { method: 'POST', token: user.token, body: form })).json()) as { id: number };
  const sent = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content, attachment_ids: [uploaded.id] } });
  expect(sent.status).toBe(200);
}

/** The parts of the request's contents, flattened, as text or `mime:bytes`. */
function partsOf(body: any): string[] {
  return (body.contents as { parts: any[] }[]).flatMap((content) =>
    content.parts.map((part) => (part.inlineData ? `${part.inlineData.mimeType}:${Buffer.from(part.inlineData.data, 'base64').length}` : part.text)),
  );
}

describe('the bot sees and hears', () => {
  test('an image and a voice message in the room reach the model as data parts, each beside its message, in order', async () => {
    const { t, alice, bob, chatId } = await roomWithBot({});
    try {
      const photo = media.png(320, 200, 5000);
      const voice = media.wav(250);
      await sendFile(t, alice, chatId, 'the whiteboard', photo, 'board.png');
      await sendFile(t, bob, chatId, '', voice, 'voice.wav');
      const request = fake.nextRequest();
      await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content: '/bot what is on the whiteboard?' } });
      const { body } = await request;
      expect(partsOf(body)).toEqual([
        `${alice.username}: the whiteboard`,
        `image/png:${photo.length}`,
        `${bob.username}: `,
        `audio/wav:${voice.length}`,
        `${alice.username}: /bot what is on the whiteboard?`,
      ]);
      const inline = body.contents[0].parts[1].inlineData.data as string;
      expect(Buffer.from(inline, 'base64')).toEqual(Buffer.from(photo));
    } finally {
      await t.cleanup();
    }
  }, 30_000);

  test('within BOT_CONTEXT_BYTES the newest files go as data and older ones as a note naming them; formats Gemini cannot read are a note too', async () => {
    const { t, alice, chatId } = await roomWithBot({ BOT_CONTEXT_BYTES: '6000' });
    try {
      await sendFile(t, alice, chatId, 'old photo', media.png(10, 10, 5000), 'old.png');
      await sendFile(t, alice, chatId, 'new photo', media.jpeg(10, 10, 5000), 'new.jpg');
      await sendFile(t, alice, chatId, 'a gif', media.gif(), 'anim.gif');
      const request = fake.nextRequest();
      await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: alice.token, json: { content: '/bot compare' } });
      const parts = partsOf((await request).body);
      const text = parts.join('\n');
      expect(text).toContain(`${alice.username}: old photo\n[${alice.username} attached "old.png" (image/png, left out: older than what fits in the context)]`);
      expect(text).toContain(`${alice.username}: a gif\n[${alice.username} attached "anim.gif" (image/gif, a format you cannot read)]`);
      expect(parts.filter((part) => part.startsWith('image/'))).toEqual(['image/jpeg:5000']);
    } finally {
      await t.cleanup();
    }
  }, 30_000);
});

describe('chooseMedia and buildContents (pure)', () => {
  const file = (id: number, size: number, contentType = 'image/png') => ({ id, filename: `f${id}`, contentType, size });
  const history = [
    { id: 1, username: 'a', content: 'one', isBot: false, attachments: [file(1, 400), file(2, 300, 'audio/ogg')] },
    { id: 2, username: null, content: 'answer', isBot: true },
    { id: 3, username: 'b', content: 'two', isBot: false, attachments: [file(3, 500, 'application/pdf')] },
    { id: 4, username: 'c', content: '/bot q', isBot: false },
  ];
  test('newest first while they fit; a file too large is skipped for older ones that fit', () => {
    const kept = contextWindow(history, { messages: 10, chars: 1000 });
    expect(chooseMedia(kept, 800).map((attachment) => attachment.id)).toEqual([3, 2]);
    expect(chooseMedia(kept, 450).map((attachment) => attachment.id)).toEqual([2]);
  });
  test('data parts sit after their message, and turns still alternate', () => {
    const contents = buildContents(history, { messages: 10, chars: 1000 }, [], new Map([[3, 'AAAA']]));
    expect(contents.map((content) => content.role)).toEqual(['user', 'model', 'user']);
    expect(contents[2]!.parts).toEqual([{ text: 'b: two' }, { inlineData: { mimeType: 'application/pdf', data: 'AAAA' } }, { text: 'c: /bot q' }]);
  });
});

describe('the stand-in checks parts as the real API does', () => {
  const ask = (contents: unknown) =>
    fetch(`${fake.url}/v1/models/m:streamGenerateContent?alt=sse`, {
      method: 'POST',
      headers: { 'x-goog-api-key': DEFAULT_FAKE_GEMINI_API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ contents }),
    });
  test.each([
    ['an unsupported type', [{ role: 'user', parts: [{ inlineData: { mimeType: 'image/gif', data: 'AAAA' } }] }], 'Unsupported MIME type'],
    ['data that is not base64', [{ role: 'user', parts: [{ inlineData: { mimeType: 'image/png', data: 'not base64!' } }] }], 'base64'],
    ['a part with both fields', [{ role: 'user', parts: [{ text: 'x', inlineData: { mimeType: 'image/png', data: 'AAAA' } }] }], 'exactly one'],
    [
      'turns that do not alternate',
      [
        { role: 'user', parts: [{ text: 'a' }] },
        { role: 'user', parts: [{ text: 'b' }] },
      ],
      'alternate',
    ],
    [
      'more than 20 MB of data',
      [{ role: 'user', parts: [{ inlineData: { mimeType: 'audio/wav', data: 'A'.repeat(28 * 1024 * 1024) } }] }],
      'exceeds the limit',
    ],
  ])('%s is a 400', async (_case, contents, message) => {
    const response = await ask(contents);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toContain(message);
  });
});
