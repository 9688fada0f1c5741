import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { tmpdir } from 'node:os';
import { createTestDatabase, RATE_LIMITS_OFF, testRedisEnv } from './support/app';
import type { ClusterUser, Instance } from './support/cluster';
import { eventually, graphqlOn, ok, signUpOn, startInstance, watchRoomLocks } from './support/cluster';
import type { FakeGemini, FakeGeminiRequest } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import type { ChatClient, Frame } from './support/sockets';

/**
 * Two real server processes sharing one PostgreSQL database, one Redis prefix and one secret,
 * both pointed at one fake Gemini: tokens, messages and bot answers must work across them as in
 * one process. Runs only when TEST_DATABASE_URL and TEST_REDIS_URL are both set.
 */

const LOCK_TTL_MS = 15_000; // src/services/room-lock.ts
/** Two processes starting at once (each applying migrations) take a few seconds; hooks default to 5. */
const STARTUP_TIMEOUT_MS = 60_000;

if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) {
  describe('a cluster of two instances on PostgreSQL + Redis', () => {
    let fake: FakeGemini;
    let database: { url: string; drop: () => Promise<void> };
    let sql: InstanceType<typeof Bun.SQL>;
    let locks: Awaited<ReturnType<typeof watchRoomLocks>>;
    let a: Instance;
    let b: Instance;
    /** alice talks to A, bob to B; carol (on A) is in none of their rooms. */
    let alice: ClusterUser;
    let bob: ClusterUser;
    let carol: ClusterUser;

    beforeAll(async () => {
      fake = await startFakeGemini();
      database = await createTestDatabase(tmpdir());
      sql = new Bun.SQL(database.url);
      const redis = testRedisEnv();
      locks = await watchRoomLocks(redis.REDIS_URL!, redis.REDIS_PREFIX!);
      const env = {
        NODE_ENV: 'production',
        DATABASE_URL: database.url,
        ...redis,
        SECRET_KEY: 'cluster-test-secret-key-0123456789abcdef',
        GEMINI_API_KEY: fake.apiKey,
        GEMINI_BASE_URL: fake.url,
        ...RATE_LIMITS_OFF,
      };
      // Both start at once on the fresh database, as a deployment's replicas would: both apply migrations.
      [a, b] = await Promise.all([startInstance('A', env), startInstance('B', env)]);
      [alice, bob, carol] = await Promise.all([signUpOn(a, 'alice'), signUpOn(b, 'bob'), signUpOn(a, 'carol')]);
    }, STARTUP_TIMEOUT_MS);

    afterAll(async () => {
      await Promise.all([a?.kit.dispose(), b?.kit.dispose()].map((closing) => closing?.catch(() => {})));
      await Promise.all([a?.kill(), b?.kill()]);
      await locks?.close();
      await sql?.close();
      await database?.drop();
      await fake?.stop();
    }, STARTUP_TIMEOUT_MS);

    /** A group room created on `instance` by `owner` with `guest` invited: by default alice on A, inviting bob. */
    async function room(name: string, instance = a, owner = alice, guest = bob): Promise<number> {
      const chat = await ok<{ id: number }>(instance.request('/api/chats', { method: 'POST', token: owner.token, json: { name, is_group: true } }));
      await ok(instance.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: owner.token, json: { username: guest.username } }));
      return chat.id;
    }

    const post = (instance: Instance, user: ClusterUser, chatId: number, content: string) =>
      ok<{ id: number; content: string }>(instance.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } }));

    const history = (instance: Instance, user: ClusterUser, chatId: number) =>
      ok<{ id: number; content: string; is_bot: boolean }[]>(instance.request(`/api/chats/${chatId}/messages`, { token: user.token }));

    const messageIds = (client: ChatClient, chatId: number) =>
      client.frames.filter((frame) => frame.type === 'message' && frame.chat_id === chatId).map((frame) => frame.message_id);

    const isMessage = (chatId: number, content: string) => (frame: Frame) => frame.type === 'message' && frame.chat_id === chatId && frame.content === content;

    const completion = (chatId: number, messageId?: number) => (frame: Frame) =>
      frame.type === 'bot_stream' && frame.chat_id === chatId && frame.is_complete === true && (messageId === undefined || frame.message_id === messageId);

    const completions = (client: ChatClient, chatId: number) => client.frames.filter(completion(chatId)).map((frame) => frame.message_id);

    async function openMember(instance: Instance, user: ClusterUser, chatId: number): Promise<ChatClient> {
      const socket = instance.kit.chat(user.token);
      await socket.opened;
      await socket.join(chatId);
      return socket;
    }

    const MESSAGE_ADDED = 'subscription ($chatId: ID!, $after: ID) { messageAdded(chatId: $chatId, after: $after) { id content username } }';

    test('a token issued by A is accepted by B, and the other way round', async () => {
      const dana = await signUpOn(a, 'dana');
      const me = await ok<{ id: number; username: string }>(b.request('/api/auth/me', { token: dana.token }));
      expect(me).toMatchObject({ id: dana.id, username: dana.username });

      const { access_token } = await ok<{ access_token: string }>(
        b.request('/api/auth/login', { method: 'POST', json: { username: dana.username, password: dana.password } }),
      );
      expect(await ok(a.request('/api/auth/me', { token: access_token }))).toMatchObject({ id: dana.id });
      expect((await b.request('/api/auth/me', { token: `${dana.token}x` })).status).toBe(401);
    });

    test('/health on both instances reports the shared database and the Redis pub/sub', async () => {
      for (const instance of [a, b]) {
        const response = await instance.request('/health');
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ status: 'healthy', database: 'ok', pubsub: 'ready' });
      }
    });

    test('messages cross instances on /ws and graphql-ws, each once, and only to members', async () => {
      const chatId = await room('cross');
      const seed = await post(a, alice, chatId, 'seed');

      const bobSocket = await openMember(b, bob, chatId);
      const aliceSocket = await openMember(a, alice, chatId);
      // The catch-up cursor replays whatever is sent after `seed`, so no readiness is needed.
      const bobFeed = b.kit.graphql(bob.token).subscribe<{ id: string; content: string }>(MESSAGE_ADDED, { chatId, after: seed.id }, { field: 'messageAdded' });
      const aliceFeed = a.kit
        .graphql(alice.token)
        .subscribe<{ id: string; content: string }>(MESSAGE_ADDED, { chatId, after: seed.id }, { field: 'messageAdded' });

      // carol (no member) on A: refused in the room, listening in a room of her own.
      const carolSocket = a.kit.chat(carol.token);
      await carolSocket.opened;
      carolSocket.send({ type: 'join', chat_id: chatId });
      expect(await carolSocket.nextError()).toMatchObject({ error: 'Not authorized' });
      const ownRoom = await ok<{ id: number }>(a.request('/api/chats', { method: 'POST', token: carol.token, json: { name: 'carol alone' } }));
      await carolSocket.join(ownRoom.id);

      const sent: number[] = [];
      /** Waits for `content` on every socket and subscription of the room; returns its id. */
      const arrives = async (content: string) => {
        const ids = new Set<number>();
        for (const socket of [bobSocket, aliceSocket]) {
          ids.add((await socket.next(isMessage(chatId, content), `"${content}" on ${socket === bobSocket ? 'B' : 'A'}`)).message_id as number);
        }
        for (const feed of [bobFeed, aliceFeed]) ids.add(Number((await feed.next((event) => event.content === content, `"${content}" on graphql-ws`)).id));
        expect(ids.size).toBe(1);
        return [...ids][0]!;
      };

      // A → B over REST.
      const viaRest = await post(a, alice, chatId, 'via REST on A');
      sent.push(await arrives(viaRest.content));
      expect(sent.at(-1)).toBe(viaRest.id);

      // A → B over /ws.
      aliceSocket.send({ type: 'message', chat_id: chatId, content: 'via /ws on A' });
      sent.push(await arrives('via /ws on A'));

      // A → B over GraphQL.
      const { sendMessage } = await graphqlOn<{ sendMessage: { id: string } }>(
        a,
        alice.token,
        'mutation ($chatId: ID!, $content: String!) { sendMessage(chatId: $chatId, content: $content) { id } }',
        { chatId, content: 'via GraphQL on A' },
      );
      sent.push(await arrives('via GraphQL on A'));
      expect(sent.at(-1)).toBe(Number(sendMessage.id));

      // B → A over /ws.
      bobSocket.send({ type: 'message', chat_id: chatId, content: 'via /ws on B' });
      sent.push(await arrives('via /ws on B'));

      // A last message through both instances fences any late duplicate of the earlier ones.
      sent.push(await arrives((await post(b, bob, chatId, 'fence')).content));
      await carolSocket.next(isMessage(ownRoom.id, (await post(b, carol, ownRoom.id, 'carol fence')).content));

      expect(sent).toEqual([...sent].sort((x, y) => x - y));
      expect(messageIds(bobSocket, chatId)).toEqual(sent);
      expect(messageIds(aliceSocket, chatId)).toEqual(sent);
      expect(bobFeed.events.map((event) => Number(event.id))).toEqual(sent);
      expect(aliceFeed.events.map((event) => Number(event.id))).toEqual(sent);
      expect(bobFeed.errors).toEqual([]);
      // carol heard nothing of the room she is not in: only her own room's message.
      expect(carolSocket.frames.filter((frame) => frame.chat_id === chatId && frame.type !== 'error')).toEqual([]);
      expect(carolSocket.frames.filter((frame) => frame.type === 'message').map((frame) => frame.chat_id)).toEqual([ownRoom.id]);
    });

    test('two /bot asks at once on A and B: each answered once, in id order, one answer at a time', async () => {
      const chatId = await room('bot race');
      const aliceSocket = await openMember(a, alice, chatId);
      const bobSocket = await openMember(b, bob, chatId);
      const requestsBefore = fake.requests.length;

      // The first answer is slow; the second request must wait for it to be complete.
      let firstExchangeOver = false;
      let firstExchangeOverWhenSecondArrived: boolean | undefined;
      void fake.nextRequest().then((request) => request.closed.then(() => (firstExchangeOver = true)));
      fake.reply({ kind: 'text', chunks: ['First ', 'answer, ', 'slowly.'], delayMs: 50 });
      fake.reply(() => {
        firstExchangeOverWhenSecondArrived = firstExchangeOver;
        return { kind: 'text', chunks: ['Second answer.'] };
      });

      const [fromA, fromB] = await Promise.all([post(a, alice, chatId, '/bot question from A'), post(b, bob, chatId, '/bot question from B')]);
      const [earlier, later] = fromA.id < fromB.id ? [fromA, fromB] : [fromB, fromA];
      const [earlierAsker, laterAsker] = earlier === fromA ? [alice, bob] : [bob, alice];

      // Every queued answer() on either instance has taken the room's lock and let it go: nothing is left to run.
      await locks.released(chatId, 2);

      expect(fake.requests.length - requestsBefore).toBe(2);
      const [firstRequest, secondRequest] = fake.requests.slice(requestsBefore) as [FakeGeminiRequest, FakeGeminiRequest];
      const lastUserTurn = (request: FakeGeminiRequest) =>
        (request.body.contents as { role: string; parts: { text: string }[] }[]).findLast((content) => content.role === 'user')!.parts[0]!.text;
      expect(lastUserTurn(firstRequest)).toEndWith(`${earlierAsker.username}: ${earlier.content}`);
      expect(lastUserTurn(secondRequest)).toEndWith(`${laterAsker.username}: ${later.content}`);
      // The second request was built from a history where the first answer was already stored complete.
      expect(secondRequest.body.contents).toContainEqual({ role: 'model', parts: [{ text: 'First answer, slowly.' }] });
      expect(firstExchangeOverWhenSecondArrived).toBe(true);

      const answers = await sql`SELECT id, reply_to_id, status, content FROM messages WHERE chat_id = ${chatId} AND is_bot ORDER BY id`;
      expect(answers.map((row: { reply_to_id: number; status: string; content: string }) => [row.reply_to_id, row.status, row.content])).toEqual([
        [earlier.id, 'complete', 'First answer, slowly.'],
        [later.id, 'complete', 'Second answer.'],
      ]);
      const answerIds = answers.map((row: { id: number }) => row.id);
      const stored = await history(a, alice, chatId);
      expect(stored.filter((message) => message.is_bot).map((message) => message.id)).toEqual(answerIds);
      // In id order: whether the first answer's row comes before the later ask's depends on which was stored first.
      expect(stored.map((message) => message.id)).toEqual([earlier.id, later.id, ...answerIds].sort((x, y) => x - y));

      // Members on both instances see each answer complete once: a later message fences duplicates.
      for (const socket of [aliceSocket, bobSocket]) {
        for (const id of answerIds) await socket.next(completion(chatId, id), `the completion of answer ${id}`);
      }
      const fence = await post(a, alice, chatId, 'after the answers');
      for (const socket of [aliceSocket, bobSocket]) {
        await socket.next(isMessage(chatId, fence.content));
        expect(completions(socket, chatId)).toEqual(answerIds);
        expect(socket.frames.filter(completion(chatId)).map((frame) => [frame.full_response, frame.error])).toEqual([
          ['First answer, slowly.', undefined],
          ['Second answer.', undefined],
        ]);
      }
    });

    test(
      'when the instance answering dies, another takes over the room within the lock TTL',
      async () => {
        const chatId = await room('takeover');
        const bobSocket = await openMember(b, bob, chatId);
        const requestsBefore = fake.requests.length;

        fake.reply({ kind: 'hang-after', chunks: ['partial '] });
        const hanging = fake.nextRequest();
        const ask = await post(a, alice, chatId, '/bot are you there?');
        const delta = await bobSocket.next(
          (frame) => frame.type === 'bot_stream' && frame.chat_id === chatId && frame.is_complete === false,
          'the first delta',
        );
        expect(delta.chunk).toBe('partial ');
        const deadAnswerId = delta.message_id as number;
        const request = await hanging;

        a.proc.kill(9);
        await a.exited;
        await request.closed;
        expect(request.aborted).toBe(true);

        const killedAt = Date.now();
        const retry = await post(b, bob, chatId, '/bot and now?');
        // B waits for the dead holder's lock to expire, marks its answer failed, then answers.
        const failed = await eventually(() => bobSocket.next(completion(chatId, deadAnswerId), "the dead answer's completion"), LOCK_TTL_MS + 5_000);
        expect(failed.error).toBe('The answer was interrupted: the server running it stopped');
        const answered = await bobSocket.next((frame) => completion(chatId)(frame) && frame.message_id !== deadAnswerId, "the new answer's completion");
        expect(Date.now() - killedAt).toBeLessThan(LOCK_TTL_MS + 2_000);
        // The failed answer is not in the context: both asks make one user turn.
        expect(answered.full_response).toBe(`Echo: ${alice.username}: ${ask.content}\n${bob.username}: ${retry.content}`);
        expect(answered.error).toBeUndefined();
        const answerId = answered.message_id as number;
        await locks.released(chatId, 1);

        expect(fake.requests.length - requestsBefore).toBe(2);
        const rows = await sql`SELECT id, reply_to_id, status FROM messages WHERE chat_id = ${chatId} AND is_bot ORDER BY id`;
        expect(rows.map((row: { id: number; reply_to_id: number; status: string }) => [row.id, row.reply_to_id, row.status])).toEqual([
          [deadAnswerId, ask.id, 'failed'],
          [answerId, retry.id, 'complete'],
        ]);
        const stored = await history(b, bob, chatId);
        expect(stored.map((message) => message.id)).toEqual([ask.id, retry.id, answerId]);
        const fence = await post(b, bob, chatId, 'after the takeover');
        await bobSocket.next(isMessage(chatId, fence.content));
        expect(completions(bobSocket, chatId)).toEqual([deadAnswerId, answerId]);
      },
      LOCK_TTL_MS * 2,
    );

    test("SIGTERM closes the instance's sockets with 1001 and it exits cleanly", async () => {
      const chatId = await room('shutdown', b, bob, alice);
      const socket = await openMember(b, bob, chatId);
      const graphqlClient = b.kit.graphql(bob.token);
      const seed = await post(b, bob, chatId, 'seed');
      const feed = graphqlClient.subscribe(MESSAGE_ADDED, { chatId, after: seed.id }, { field: 'messageAdded' });
      // A message through the subscription proves the graphql-ws socket is up before the signal.
      const { id } = await post(b, bob, chatId, 'before the shutdown');
      await feed.next((event: { id: string }) => Number(event.id) === id);

      b.proc.kill('SIGTERM');
      expect(await socket.closed).toMatchObject({ code: 1001 });
      expect((await graphqlClient.closed).code).toBe(1001);
      expect(await b.exited).toBe(0);
      expect(b.output()).toContain('Shutting down: draining');
    });
  });
}
