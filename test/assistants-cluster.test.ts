import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { tmpdir } from 'node:os';
import { createTestDatabase, RATE_LIMITS_OFF, testRedisEnv } from './support/app';
import type { ClusterUser, Instance } from './support/cluster';
import { ok, signUpOn, startInstance, watchRoomLocks } from './support/cluster';
import type { FakeGemini, FakeGeminiRequest } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';

/**
 * Room assistants across two real processes on one PostgreSQL database and one Redis, both pointed
 * at one Gemini stand-in: settings made on one instance are used by answers the other runs, the
 * memory one writes leads the other's contexts, and usage reads the same on both. Asks alternate
 * between the instances (each answers the asks posted to it). Runs only when TEST_DATABASE_URL and
 * TEST_REDIS_URL are set.
 */

const STARTUP_TIMEOUT_MS = 60_000;
const textOf = (content: any): string => (content?.parts ?? []).map((part: { text?: string }) => part.text ?? '').join('');
const isSummary = (request: FakeGeminiRequest) => textOf(request.body.systemInstruction).includes('long-term memory');

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('assistants on two instances', () => {
    let fake: FakeGemini;
    let database: { url: string; drop: () => Promise<void> };
    let locks: Awaited<ReturnType<typeof watchRoomLocks>>;
    let a: Instance;
    let b: Instance;
    let alice: ClusterUser;
    let bob: ClusterUser;

    beforeAll(async () => {
      fake = await startFakeGemini();
      fake.setDefault((request) => {
        if (isSummary(request)) return { kind: 'text', chunks: ['MEMORY: the code is 4417'] };
        return { kind: 'text', chunks: ['Echo: ', textOf((request.body.contents as any[]).findLast((turn) => turn.role === 'user'))] };
      });
      database = await createTestDatabase(tmpdir());
      const redis = testRedisEnv();
      locks = await watchRoomLocks(redis.REDIS_URL!, redis.REDIS_PREFIX!);
      const env = {
        NODE_ENV: 'production',
        DATABASE_URL: database.url,
        ...redis,
        SECRET_KEY: 'assistants-cluster-test-secret-key-0123456789abcdef',
        GEMINI_API_KEY: fake.apiKey,
        GEMINI_BASE_URL: fake.url,
        BOT_MODELS: 'm-one,m-two',
        BOT_CONTEXT_MESSAGES: '4',
        ...RATE_LIMITS_OFF,
      };
      [a, b] = await Promise.all([startInstance('A', env), startInstance('B', env)]);
      [alice, bob] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob')]);
    }, STARTUP_TIMEOUT_MS);

    afterAll(async () => {
      await Promise.all([a?.kit.dispose(), b?.kit.dispose()].map((closing) => closing?.catch(() => {})));
      await Promise.all([a?.kill(), b?.kill()]);
      await locks?.close();
      await database?.drop();
      await fake?.stop();
    }, STARTUP_TIMEOUT_MS);

    const post = (instance: Instance, user: ClusterUser, chatId: number, content: string) =>
      ok(instance.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } }));

    /** Posts an ask and waits until the instance that answers it has let the room's lock go: the answer, its usage and memory are stored. */
    async function ask(instance: Instance, user: ClusterUser, chatId: number, content: string, releases: number): Promise<FakeGeminiRequest[]> {
      const before = fake.requests.length;
      await post(instance, user, chatId, content);
      await locks.released(chatId, releases, 10_000);
      return fake.requests.slice(before);
    }

    test('settings, memory and usage are the same whichever instance answers', async () => {
      const chat = await ok<{ id: number }>(
        a.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'shared', is_group: true, participant_usernames: [bob.username] } }),
      );
      const bobOnB = b.kit.chat(bob.token);
      await bobOnB.opened;
      await bobOnB.sync();

      const keeper = await ok<{ id: number }>(
        a.request(`/api/chats/${chat.id}/assistants`, {
          method: 'POST',
          token: alice.token,
          json: { name: 'keeper', instructions: 'Speak softly.', model: 'm-two', temperature: 0.7 },
        }),
      );
      expect(await bobOnB.next('assistant_updated')).toMatchObject({ chat_id: chat.id, assistant: { id: keeper.id, instructions: 'Speak softly.' } });

      await post(a, alice, chat.id, 'The code is 4417.');
      for (const filler of ['one', 'two', 'three', 'four', 'five']) await post(b, bob, chat.id, filler);

      // B answers, with the settings made on A, and writes the memory.
      const first = await ask(b, bob, chat.id, '/bot what is the code?', 1);
      expect(first.map(isSummary)).toEqual([false, true]);
      expect(first[0]!.model).toBe('m-two');
      expect(first[0]!.body.generationConfig.temperature).toBe(0.7);
      expect(textOf(first[0]!.body.systemInstruction)).toContain('Speak softly.');
      const memoryPath = `/api/chats/${chat.id}/assistants/${keeper.id}/memory`;
      const memoryOnA = await ok(a.request(memoryPath, { token: alice.token }));
      expect(memoryOnA).toMatchObject({ summary: 'MEMORY: the code is 4417' });
      expect(await ok(b.request(memoryPath, { token: bob.token }))).toEqual(memoryOnA);

      // Changed on B, used by A; A's context opens with the memory B wrote.
      await ok(b.request(`/api/chats/${chat.id}/assistants/${keeper.id}`, { method: 'PUT', token: alice.token, json: { instructions: 'Speak loudly.' } }));
      const second = await ask(a, alice, chat.id, '/bot say it again', 2);
      expect(textOf(second[0]!.body.systemInstruction)).toContain('Speak loudly.');
      expect(textOf(second[0]!.body.systemInstruction)).not.toContain('Speak softly.');
      expect(textOf(second[0]!.body.contents[0])).toContain('MEMORY: the code is 4417');

      const usageOnA = await ok(a.request(`/api/chats/${chat.id}/usage`, { token: alice.token }));
      expect(usageOnA.total.answers).toBe(2);
      expect(usageOnA.by_assistant).toEqual([expect.objectContaining({ assistant_id: keeper.id, answers: 2 })]);
      expect(await ok(b.request(`/api/chats/${chat.id}/usage`, { token: bob.token }))).toEqual(usageOnA);
    });
  });
}
