import { beforeAll, describe, expect, test } from 'bun:test';
import { DATABASE_CHUNK_BYTES } from '../src/services/attachments/file-store';
import type { Instance } from './support/cluster';
import { ok, signUpOn, twoInstances } from './support/cluster';
import { media } from './support/media';

/**
 * Attachments and profiles across two real processes on one PostgreSQL database (the file store
 * is the database itself) and one Redis: an upload on one instance is downloadable on the other,
 * whole and by range; sending, deleting and profile changes reach the other instance's sockets.
 * Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are set.
 */

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('attachments on two instances', () => {
    let a: Instance;
    let b: Instance;
    const cluster = twoInstances('attachments');
    beforeAll(() => ({ a, b } = cluster));

    const upload = async (instance: Instance, token: string, chatId: number, file: Uint8Array, name: string) => {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(file)]), name);
      const response = await instance.request(`/api/chats/${chatId}/attachments`, { method: 'POST', token, body: form });
      expect(response.status).toBe(201);
      return (await response.json()) as { id: number; url: string; size: number };
    };

    test('an upload on one instance is downloadable on the other, whole and by range; sent there, it reaches sockets there; deleted, it is gone everywhere', async () => {
      const alice = await signUpOn(a, 'alice');
      const bob = await signUpOn(b, 'bob');
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'c', participant_usernames: [bob.username] } }),
      );
      // Several database chunks, so a range crosses a chunk's edge.
      const file = media.wav(100);
      const big = new Uint8Array(DATABASE_CHUNK_BYTES * 2 + 1234);
      big.set(file.subarray(0, 44));
      for (let i = 44; i < big.length; i++) big[i] = i % 251;
      const stored = await upload(a, alice.token, chat.id, big, 'long.wav');
      expect(stored.size).toBe(big.length);

      const whole = await b.request(stored.url);
      expect(whole.status).toBe(200);
      expect(new Uint8Array(await whole.arrayBuffer())).toEqual(big);
      const from = DATABASE_CHUNK_BYTES - 10;
      const part = await b.request(`/api/attachments/${stored.id}/content`, { token: bob.token, headers: { range: `bytes=${from}-${from + 19}` } });
      expect(part.status).toBe(206);
      expect(new Uint8Array(await part.arrayBuffer())).toEqual(big.slice(from, from + 20));

      const bobSocket = b.kit.chat(bob.token);
      await bobSocket.opened;
      await bobSocket.sync();
      const sent = await ok<{ id: number }>(
        a.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: alice.token, json: { content: '', attachment_ids: [stored.id] } }),
      );
      expect(await bobSocket.next('message')).toMatchObject({
        message: { id: sent.id, attachments: [{ id: stored.id, filename: 'long.wav', kind: 'audio' }] },
      });

      expect((await b.request(`/api/chats/${chat.id}/messages/${sent.id}`, { method: 'DELETE', token: alice.token })).status).toBe(200);
      expect((await a.request(stored.url)).status).toBe(404);
      expect((await b.request(stored.url)).status).toBe(404);
    }, 30_000);

    test("a profile change on one instance reaches the other's sockets as user_updated; the avatar is served by both", async () => {
      const alice = await signUpOn(a, 'alice');
      const bob = await signUpOn(b, 'bob');
      await ok(a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'p', participant_usernames: [bob.username] } }));
      const bobSocket = b.kit.chat(bob.token);
      await bobSocket.opened;
      await bobSocket.sync();
      const png = media.png(8, 8, 300);
      const profile = await ok<{ avatar_url: string }>(
        a.request('/api/auth/me/avatar', { method: 'PUT', token: alice.token, headers: { 'content-type': 'image/png' }, body: png }),
      );
      expect(await bobSocket.next('user_updated')).toMatchObject({ user: { id: alice.id, avatar_url: profile.avatar_url } });
      expect(new Uint8Array(await (await b.request(profile.avatar_url)).arrayBuffer())).toEqual(png);
    }, 30_000);
  });
}
