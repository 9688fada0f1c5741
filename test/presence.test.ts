import { afterEach, describe, expect, test } from 'bun:test';
import type { App } from '../src/app';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { PrivateRedis } from './support/redis-server';
import { startPrivateRedis } from './support/redis-server';
import { groupRoom } from './support/rooms';
import type { ChatClient, Frame, ServedTestApp } from './support/sockets';
import { servedTestApp, socketKit } from './support/sockets';
import { recordUserEvents } from './support/user-events';

/**
 * Presence over real sockets: online on a user's first socket (`/ws` or graphql-ws), offline once
 * the last one has been closed for PRESENCE_GRACE_MS, each change told once to everyone who shares a
 * chat with the user and to nobody else, on `/ws`, GraphQL's viewerEvents, the participants route
 * and `User.online`. Runs on PostgreSQL + Redis too with TEST_DATABASE_URL and TEST_REDIS_URL.
 */

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const presenceOf = (user: TestUser, status?: 'online' | 'offline') => (frame: Frame) =>
  frame.type === 'presence' && frame.user_id === user.id && (status === undefined || frame.status === status);

/** A `/ws` socket of `user`, open and past its membership loading. */
async function connect(served: ServedTestApp, user: TestUser): Promise<ChatClient> {
  const socket = served.kit.chat(user.token);
  await socket.opened;
  await socket.sync();
  return socket;
}

/** Closes `sockets` and waits until the server's close handler has run for each (their presence released). */
async function disconnect(served: ServedTestApp, ...sockets: ChatClient[]): Promise<void> {
  const closedBefore = served.closes.count;
  await Promise.all(sockets.map((socket) => socket.close()));
  await served.closes.closed(closedBefore + sockets.length);
}

/** Polls `check` until it holds (bounded): for what another instance learns with no event to await. */
async function until(check: () => Promise<boolean>, what: string, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function participants(t: TestApp, viewer: TestUser, chatId: number) {
  const response = await t.request(`/api/chats/${chatId}/participants`, { token: viewer.token });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: number; online: boolean; last_seen_at: string | null }[];
}

async function graphql(t: TestApp, viewer: TestUser, query: string, variables: Record<string, unknown> = {}) {
  const response = await t.request('/graphql', { method: 'POST', token: viewer.token, json: { query, variables } });
  const body = (await response.json()) as { data?: any; errors?: unknown[] };
  expect(body.errors).toBeUndefined();
  return body.data;
}

describe('PRESENCE_GRACE_MS=50', () => {
  const queries: string[] = [];
  const served = servedTestApp({ PRESENCE_GRACE_MS: '50' }, { logQuery: (query) => queries.push(query) });

  test('online on the first socket and offline once the last has been closed for the grace, each told once, to those who share a chat only', async () => {
    const [ana, ben, cal] = await Promise.all([signUp(served.t), signUp(served.t), signUp(served.t)]);
    const chatId = await groupRoom(served.t, ben, [ana], 'presence');
    await groupRoom(served.t, cal, [ben], "ana's not here");
    const benSocket = await connect(served, ben);
    // Ben coming online is told to cal (they share a chat) before the recording starts.
    await served.t.app.services.presence.idle();
    const benHears = await recordUserEvents(served.t.app.services.pubsub, ben.id);
    const calHears = await recordUserEvents(served.t.app.services.pubsub, cal.id);

    const first = await connect(served, ana);
    expect(await benSocket.next(presenceOf(ana))).toEqual({ type: 'presence', user_id: ana.id, username: ana.username, status: 'online', last_seen_at: null });
    const second = await connect(served, ana);
    await disconnect(served, first);
    // The second socket is still open: nothing waits to take ana offline.
    expect(served.t.app.services.presence.tracking(ana.id)).toEqual({ sockets: 1, grace: false });
    expect((await participants(served.t, ben, chatId)).find((p) => p.id === ana.id)).toMatchObject({ online: true, last_seen_at: null });

    const closedAt = Date.now();
    await disconnect(served, second);
    const offline = await benSocket.next(presenceOf(ana, 'offline'));
    const lastSeenAt = offline.last_seen_at as string;
    expect(offline).toEqual({ type: 'presence', user_id: ana.id, username: ana.username, status: 'offline', last_seen_at: lastSeenAt });
    expect(lastSeenAt).toMatch(ISO_UTC);
    expect(Date.parse(lastSeenAt)).toBeGreaterThanOrEqual(closedAt - 1);
    // Persisted before it was pushed.
    expect((await participants(served.t, ben, chatId)).find((p) => p.id === ana.id)).toMatchObject({ online: false, last_seen_at: lastSeenAt });

    // Once per change: the second socket and the first close told nobody anything.
    await served.t.app.services.presence.idle();
    expect((await benHears.settled()).filter((event) => event.type === 'presence')).toHaveLength(2);
    // What the server pushed to ben's socket before it answers this, ben's socket has.
    await benSocket.sync();
    expect(benSocket.frames.filter(presenceOf(ana)).map((frame) => frame.status)).toEqual(['online', 'offline']);
    // Cal shares no chat with ana; ana is not told of herself.
    expect(await calHears.settled()).toEqual([]);
    expect([...first.frames, ...second.frames].filter((frame) => frame.type === 'presence')).toEqual([]);
    expect(served.t.app.services.presence.tracking(ana.id)).toBeNull();
    benHears.stop();
    calHears.stop();
  });

  test('whoever shares a chat at the moment of a change hears it: someone invited while ana is online hears her go offline', async () => {
    const [ana, dee] = await Promise.all([signUp(served.t), signUp(served.t)]);
    const deeSocket = await connect(served, dee);
    const anaSocket = await connect(served, ana);
    await served.t.app.services.presence.idle();
    const chatId = await groupRoom(served.t, ana, [dee], 'later');
    await deeSocket.next('chat_invite');
    expect((await participants(served.t, dee, chatId)).map((p) => [p.id, p.online])).toEqual([
      [ana.id, true],
      [dee.id, true],
    ]);
    await disconnect(served, anaSocket);
    expect(await deeSocket.next(presenceOf(ana))).toMatchObject({ status: 'offline' });
    expect(deeSocket.frames.filter(presenceOf(ana, 'online'))).toEqual([]);
  });

  test('graphql-ws sockets count too; viewerEvents carries PresenceChangedEvent', async () => {
    const [ana, ben] = await Promise.all([signUp(served.t), signUp(served.t)]);
    await groupRoom(served.t, ana, [ben], 'graphql presence');
    const VIEWER_EVENTS = 'subscription { viewerEvents { __typename ... on PresenceChangedEvent { userId username online lastSeenAt } } }';
    const benEvents = served.kit.graphql(ben.token).subscribe<any>(VIEWER_EVENTS, {}, { field: 'viewerEvents', ready: ['user:event', ben.id] });
    await benEvents.ready;

    // Ana is connected through graphql-ws only, with a subscription of her own.
    const anaClient = served.kit.graphql(ana.token);
    anaClient.subscribe(VIEWER_EVENTS, {}, { field: 'viewerEvents' });
    await anaClient.connected;
    const isAna = (event: any) => event.__typename === 'PresenceChangedEvent' && event.userId === String(ana.id);
    expect(await benEvents.next(isAna)).toEqual({
      __typename: 'PresenceChangedEvent',
      userId: String(ana.id),
      username: ana.username,
      online: true,
      lastSeenAt: null,
    });

    await anaClient.client.dispose();
    await anaClient.closed;
    const offline = await benEvents.next(isAna);
    expect(offline).toMatchObject({ online: false, lastSeenAt: expect.stringMatching(ISO_UTC) });
  });

  test('User.online and lastSeenAt: null for someone who shares no chat with you; one query and one store lookup for a whole list', async () => {
    const [viewer, online, offline, stranger] = await Promise.all([signUp(served.t), signUp(served.t), signUp(served.t), signUp(served.t)]);
    const chatId = await groupRoom(served.t, viewer, [online, offline], 'who is here');
    const observer = await connect(served, viewer);
    await disconnect(served, await connect(served, offline));
    await observer.next(presenceOf(offline, 'offline'));
    await connect(served, online);
    await observer.next(presenceOf(online, 'online'));

    const PARTICIPANTS = 'query ($id: ID!) { chat(id: $id) { participants { id online lastSeenAt } } }';
    const { chat } = await graphql(served.t, viewer, PARTICIPANTS, { id: chatId });
    const lastSeen = (await participants(served.t, viewer, chatId)).find((p) => p.id === offline.id)!.last_seen_at;
    expect(lastSeen).toMatch(ISO_UTC);
    expect(chat.participants).toEqual([
      { id: String(viewer.id), online: true, lastSeenAt: null },
      { id: String(online.id), online: true, lastSeenAt: null },
      { id: String(offline.id), online: false, lastSeenAt: lastSeen },
    ]);
    const search = await graphql(served.t, viewer, 'query ($q: String!) { searchUsers(query: $q) { id online lastSeenAt } }', { q: stranger.username });
    expect(search.searchUsers).toEqual([{ id: String(stranger.id), online: null, lastSeenAt: null }]);
    expect((await graphql(served.t, viewer, '{ me { online } }')).me).toEqual({ online: true });

    // As many statements and store lookups for a chat of 3 as for a chat of 9.
    const { presence } = served.t.app.services;
    const onlineAmong = presence.onlineAmong.bind(presence);
    let lookups = 0;
    presence.onlineAmong = (userIds) => {
      lookups++;
      return onlineAmong(userIds);
    };
    try {
      // Measured on a second run: the first may fill the membership cache.
      const cost = async (query: string, id: number) => {
        await graphql(served.t, viewer, query, { id });
        queries.length = 0;
        lookups = 0;
        await graphql(served.t, viewer, query, { id });
        return { statements: queries.length, lookups };
      };
      const crowd = await Promise.all(Array.from({ length: 8 }, () => signUp(served.t)));
      const bigChatId = await groupRoom(served.t, viewer, crowd, 'crowd');
      const withPresence = await cost(PARTICIPANTS, bigChatId);
      expect(withPresence).toEqual(await cost(PARTICIPANTS, chatId));
      expect(withPresence.lookups).toBe(1);
      const without = await cost('query ($id: ID!) { chat(id: $id) { participants { id } } }', bigChatId);
      expect(withPresence.statements).toBe(without.statements + 1);
    } finally {
      presence.onlineAmong = onlineAmong;
    }
  }, 20_000);
  test('a messageAdded result is shared by the room: it shows no presence, and no error', async () => {
    const [ana, ben] = await Promise.all([signUp(served.t), signUp(served.t)]);
    const chatId = await groupRoom(served.t, ana, [ben], 'shared results');
    const added = served.kit.graphql(ben.token).subscribe<any>(
      'subscription ($id: ID!) { messageAdded(chatId: $id) { content user { username online lastSeenAt } } }',
      { id: chatId },
      {
        field: 'messageAdded',
        ready: ['chat:message', chatId],
      },
    );
    await added.ready;
    await served.t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: ana.token, json: { content: 'hello' } });
    expect(await added.next(() => true)).toEqual({ content: 'hello', user: { username: ana.username, online: null, lastSeenAt: null } });
    expect(added.errors).toEqual([]);
  });
});

describe('a grace longer than the test', () => {
  const served = servedTestApp({ PRESENCE_GRACE_MS: '600000' });

  test('a reload within the grace does not flap: no offline, no second online', async () => {
    const [ana, ben] = await Promise.all([signUp(served.t), signUp(served.t)]);
    await groupRoom(served.t, ana, [ben], 'reload');
    const benSocket = await connect(served, ben);
    const benHears = await recordUserEvents(served.t.app.services.pubsub, ben.id);
    const before = await connect(served, ana);
    await benSocket.next(presenceOf(ana, 'online'));

    await disconnect(served, before);
    const { presence } = served.t.app.services;
    await presence.idle();
    expect(presence.tracking(ana.id)).toEqual({ sockets: 0, grace: true });
    await connect(served, ana);
    await presence.idle();
    expect(presence.tracking(ana.id)).toEqual({ sockets: 1, grace: false });
    expect((await benHears.settled()).filter((event) => event.type === 'presence')).toHaveLength(1);
    benHears.stop();
  });

  test('a client opening and closing sockets in a loop costs one push and holds one entry and at most one timer', async () => {
    const [ana, ben] = await Promise.all([signUp(served.t), signUp(served.t)]);
    await groupRoom(served.t, ana, [ben], 'loop');
    const benSocket = await connect(served, ben);
    const benHears = await recordUserEvents(served.t.app.services.pubsub, ben.id);
    const { presence } = served.t.app.services;
    for (let round = 0; round < 25; round++) {
      // Two sockets overlap each round, then both go.
      const [one, two] = [served.kit.chat(ana.token), served.kit.chat(ana.token)];
      await Promise.all([one.opened, two.opened]);
      await disconnect(served, one, two);
      expect(presence.tracking(ana.id)?.sockets).toBe(0);
    }
    await presence.idle();
    expect(presence.tracking(ana.id)).toEqual({ sockets: 0, grace: true });
    expect((await benHears.settled()).filter((event) => event.type === 'presence')).toHaveLength(1);
    await benSocket.sync();
    expect(benSocket.frames.filter(presenceOf(ana))).toHaveLength(1);
    benHears.stop();
  });
});

describe('Redis away', () => {
  let redis: PrivateRedis | undefined;
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await redis?.stop();
  });

  test('sockets open and close as usual and the instance reports its own; once Redis answers, the cluster learns who is here', async () => {
    redis = await startPrivateRedis();
    const prefix = `presence:${crypto.randomUUID()}:`;
    const a = await createTestApp({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, PRESENCE_GRACE_MS: '50' });
    cleanups.push(() => a.cleanup());
    const [ana, ben] = await Promise.all([signUp(a), signUp(a)]);
    const chatId = await groupRoom(a, ana, [ben], 'outage');
    const serverA = a.listen();
    cleanups.push(() => serverA.stop(true));
    const kitA = socketKit(serverA, a.app.services);
    cleanups.push(() => kitA.dispose());

    await redis.stop();
    const anaSocket = kitA.chat(ana.token);
    await anaSocket.opened;
    await anaSocket.sync();
    expect((await participants(a, ben, chatId)).map((p) => [p.id, p.online])).toEqual([
      [ana.id, true],
      [ben.id, false],
    ]);
    const leaving = kitA.chat(ana.token);
    await leaving.opened;
    await leaving.close();

    await redis.start();
    // Another instance on the same database and Redis sees ana once A has repaired what Redis holds of it.
    const b: App = await createApp(
      loadConfig({
        DATABASE_URL: a.config.database.url,
        REDIS_URL: redis.url,
        REDIS_PREFIX: prefix,
        SECRET_KEY: a.config.secretKey,
        PRESENCE_GRACE_MS: '50',
        LOG_LEVEL: 'silent',
      }),
    );
    cleanups.push(() => b.close());
    const serverB = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (request, server) => b.fetch(request, server), websocket: b.websocket });
    cleanups.push(() => serverB.stop(true));
    const kitB = socketKit(serverB, b.services);
    cleanups.push(() => kitB.dispose());
    const seenFromB = async () => (await b.services.presence.onlineAmong([ana.id])).has(ana.id);
    await until(seenFromB, 'instance B seeing ana online');
    expect(anaSocket.isClosed()).toBe(false);

    // Both instances on Redis again: ana going offline on A is pushed to ben on B.
    await until(async () => (await a.app.services.health()).healthy, 'instance A using Redis again');
    const benSocket = kitB.chat(ben.token);
    await benSocket.opened;
    await benSocket.sync();
    await anaSocket.close();
    expect(await benSocket.next(presenceOf(ana, 'offline'))).toMatchObject({ last_seen_at: expect.stringMatching(ISO_UTC) });
  }, 30_000);
});
