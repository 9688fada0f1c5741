import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from 'bun:test';
import type { Server } from 'bun';
import { SignJWT } from 'jose';
import type { AppOptions } from '../src/app';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { captureLogs } from './support/logs';
import { type GraphqlClient, socketKit, type SocketKit, watchServerCloses } from './support/sockets';

/**
 * Socket limits over real sockets, both protocols: MAX_SOCKETS_PER_USER counted across `/ws` and
 * graphql-ws and given back on every close path, sockets closed when their token expires, and a
 * failed user lookup told apart from bad credentials. Everything waits on socket and handler
 * events, never on a timer.
 */

const TOO_MANY = { code: 4429, reason: 'Too many open sockets' };
const EXPIRED = { code: 4401, reason: 'Token expired' };
const INTERNAL = { code: 1011, reason: 'Internal server error' };

interface Served {
  t: TestApp;
  server: Server<unknown>;
  kit: SocketKit;
  closes: ReturnType<typeof watchServerCloses>;
  stop: () => Promise<void>;
}

async function serve(env: Record<string, string> = {}, options: AppOptions = {}): Promise<Served> {
  const t = await createTestApp(env, options);
  const closes = watchServerCloses(t.app.websocket);
  const server = t.listen();
  const kit = socketKit(server, t.app.services);
  return {
    t,
    server,
    kit,
    closes,
    stop: async () => {
      await kit.dispose();
      await server.stop(true);
      await t.cleanup();
    },
  };
}

async function chatOf(t: TestApp, owner: TestUser): Promise<number> {
  const response = await t.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'sockets' } });
  return ((await response.json()) as { id: number }).id;
}

/** A graphql-ws client connected (acknowledged) by starting a typing subscription in `chatId`. */
async function connectedGraphql(kit: SocketKit, token: string, chatId: number): Promise<GraphqlClient> {
  const client = kit.graphql(token);
  client.subscribe('subscription ($chatId: ID!) { typing(chatId: $chatId) { username } }', { chatId }, { field: 'typing' });
  await client.connected;
  return client;
}

/** A token for `user` signed with the test app's key, expiring at `expiresAt` (seconds since the epoch). */
function tokenExpiringAt(t: TestApp, user: TestUser, expiresAt: number): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(String(user.id))
    .setIssuedAt()
    .setExpirationTime(expiresAt)
    .sign(new TextEncoder().encode(t.config.secretKey));
}

describe('MAX_SOCKETS_PER_USER=3', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve({ MAX_SOCKETS_PER_USER: '3' });
  });
  afterEach(() => s.kit.closeAll());
  afterAll(() => s.stop());

  test('counts /ws and graphql-ws together: the socket over the cap is closed with 4429, on either protocol; others are not touched', async () => {
    const { t, kit, closes } = s;
    const alice = await signUp(t);
    const bob = await signUp(t);
    const chatId = await chatOf(t, alice);
    const first = kit.chat(alice.token);
    const second = kit.chat(alice.token);
    await Promise.all([first.opened, second.opened]);
    await connectedGraphql(kit, alice.token, chatId);
    expect(t.app.services.sockets.openFor(alice.id)).toBe(3);

    expect(await kit.chat(alice.token).closed).toEqual(TOO_MANY);
    const overGraphql = kit.graphql(alice.token);
    overGraphql.subscribe('{ __typename }', {}, { field: '__typename' });
    expect(await overGraphql.closed).toEqual(TOO_MANY);
    expect(t.app.services.sockets.openFor(alice.id)).toBe(3);

    // Bob has places of his own.
    const bobs = kit.chat(bob.token);
    await bobs.opened;
    await bobs.sync();

    // One of alice's closes: its place is free for the next.
    const closed = closes.count;
    await first.close();
    await closes.closed(closed + 1);
    expect(t.app.services.sockets.openFor(alice.id)).toBe(2);
    const again = kit.chat(alice.token);
    await again.opened;
    await again.sync();
    expect(again.isClosed()).toBe(false);
  });

  test('what a graphql-ws client sees over the cap: a close with 4429 "Too many open sockets"', async () => {
    const { t, kit } = s;
    const alice = await signUp(t);
    const chatId = await chatOf(t, alice);
    for (let i = 0; i < 3; i++) await kit.chat(alice.token).opened;
    const over = kit.graphql(alice.token);
    const subscription = over.subscribe('subscription ($chatId: ID!) { typing(chatId: $chatId) { username } }', { chatId }, { field: 'typing' });
    expect(await over.closed).toEqual(TOO_MANY);
    expect((await subscription.done).kind).toBe('error');
  });

  test('a place is given back on every path a socket closes by', async () => {
    const { t, kit, closes } = s;
    const alice = await signUp(t);
    const chatId = await chatOf(t, alice);
    const { sockets } = t.app.services;
    let expectedCloses = closes.count;

    // The client closes, on each protocol.
    const ws = kit.chat(alice.token);
    await ws.opened;
    const graphql = await connectedGraphql(kit, alice.token, chatId);
    expect(sockets.openFor(alice.id)).toBe(2);
    await ws.close();
    await graphql.client.dispose();
    await graphql.closed;
    await closes.closed((expectedCloses += 2));
    expect(sockets.openFor(alice.id)).toBe(0);

    // Refused sockets never held one: over the cap, and with a bad token.
    const held = [kit.chat(alice.token), kit.chat(alice.token), kit.chat(alice.token)];
    await Promise.all(held.map((socket) => socket.opened));
    expect(await kit.chat(alice.token).closed).toEqual(TOO_MANY);
    expect((await kit.chat('not-a-token').closed).code).toBe(1008);
    expect((await kit.graphql('not-a-token').subscribe('{ __typename }', {}, { field: '__typename' }).done).kind).toBe('error');
    await closes.closed((expectedCloses += 3));
    expect(sockets.openFor(alice.id)).toBe(3);
    await Promise.all(held.map((socket) => socket.close()));
    await closes.closed(expectedCloses + 3);
    expect(sockets.openFor(alice.id)).toBe(0);
    expect(t.app.services.presence.usersHere()).toEqual([]);
  });

  test('a graphql-ws socket that closes while its token is being checked takes no place', async () => {
    const { t, kit, closes } = s;
    const alice = await signUp(t);
    const { auth, sockets } = t.app.services;
    const checking = Promise.withResolvers<void>();
    const carryOn = Promise.withResolvers<void>();
    const original = auth.authenticateWithExpiry.bind(auth);
    const spy = spyOn(auth, 'authenticateWithExpiry').mockImplementation(async (token) => {
      checking.resolve();
      await carryOn.promise;
      return original(token);
    });
    try {
      const closed = closes.count;
      // A raw socket: graphql-ws's client would wait for the acknowledgement before closing.
      const raw = new WebSocket(`ws://${s.server.hostname}:${s.server.port}/graphql`, 'graphql-transport-ws');
      raw.onopen = () => raw.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${alice.token}` } }));
      await checking.promise;
      raw.close();
      await closes.closed(closed + 1);
      carryOn.resolve();
      // The check finishes on a closed socket and takes nothing. A socket connected after it has
      // been through the event loop since, so the first check's continuation has run by then.
      const later = kit.graphql(alice.token);
      later.subscribe('{ __typename }', {}, { field: '__typename' });
      await later.connected;
      expect(sockets.openFor(alice.id)).toBe(1);
    } finally {
      spy.mockRestore();
    }
  });

  test('draining the server closes every socket with 1001 and gives every place back', async () => {
    const drained = await serve({ MAX_SOCKETS_PER_USER: '3' });
    try {
      const alice = await signUp(drained.t);
      const chatId = await chatOf(drained.t, alice);
      const ws = drained.kit.chat(alice.token);
      await ws.opened;
      const graphql = await connectedGraphql(drained.kit, alice.token, chatId);
      const closed = drained.closes.count;
      await drained.t.app.drain(0);
      expect((await ws.closed).code).toBe(1001);
      expect((await graphql.closed).code).toBe(1001);
      await drained.closes.closed(closed + 2);
      expect(drained.t.app.services.presence.usersHere()).toEqual([]);
    } finally {
      await drained.stop();
    }
  });
});

describe('a socket is closed when its token expires', () => {
  let s: Served;
  beforeAll(async () => {
    s = await serve();
  });
  afterEach(() => s.kit.closeAll());
  afterAll(() => s.stop());

  test('/ws and graphql-ws close with 4401 "Token expired" at the token\'s exp, and give their place back', async () => {
    const { t, kit, closes } = s;
    const alice = await signUp(t);
    const chatId = await chatOf(t, alice);
    // TOKEN_EXPIRE_MINUTES counts minutes: a token of one to two seconds is minted here instead.
    // `exp` is in whole seconds, so `+ 1` could leave a few milliseconds, less than a loaded
    // machine takes to open both sockets: at least a whole second is left for that.
    const shortLived = await tokenExpiringAt(t, alice, Math.floor(Date.now() / 1000) + 2);
    const ws = kit.chat(shortLived);
    await ws.opened;
    await ws.join(chatId);
    const graphql = await connectedGraphql(kit, shortLived, chatId);
    const closed = closes.count;

    expect(await ws.closed).toEqual(EXPIRED);
    expect(await graphql.closed).toEqual(EXPIRED);
    await closes.closed(closed + 2);
    expect(t.app.services.sockets.openFor(alice.id)).toBe(0);
  });

  test('a token valid for longer than a timer can wait (24.8 days) keeps its socket open', async () => {
    const { t, kit } = s;
    const alice = await signUp(t);
    const socket = kit.chat(await tokenExpiringAt(t, alice, Math.floor(Date.now() / 1000) + 30 * 24 * 3600));
    await socket.opened;
    await socket.sync();
    await socket.sync();
    expect(socket.isClosed()).toBe(false);
  });
});

describe("a failed user lookup is the server's fault, not bad credentials", () => {
  let s: Served;
  let alice: TestUser;
  const errors = captureLogs('error');
  beforeAll(async () => {
    s = await serve({}, { log: errors.log });
    alice = await signUp(s.t);
    // Alice has never been authenticated, so her user is not cached: every transport looks her up, with a
    // raw query (see AuthService.userById), and every raw query fails from here on.
    s.t.app.services.db.$queryRaw = (() => Promise.reject(new Error('database unreachable'))) as never;
  });
  afterEach(() => s.kit.closeAll());
  afterAll(() => s.stop());

  test('/ws closes with 1011 "Internal server error", not 1008', async () => {
    expect(await s.kit.chat(alice.token).closed).toEqual(INTERNAL);
    expect((await s.kit.chat('not-a-token').closed).code).toBe(1008);
    expect(errors.lines().some((line) => line.msg === '/ws authentication failed' && line.err?.message === 'database unreachable')).toBe(true);
  });

  test('graphql-ws closes with 1011 "Internal server error", not 4403', async () => {
    const client = s.kit.graphql(alice.token);
    client.subscribe('{ __typename }', {}, { field: '__typename' });
    expect(await client.closed).toEqual(INTERNAL);
    const badToken = s.kit.graphql('not-a-token');
    badToken.subscribe('{ __typename }', {}, { field: '__typename' });
    expect(await badToken.closed).toEqual({ code: 4403, reason: 'Forbidden' });
  });

  test('REST answers 500 masked, GraphQL INTERNAL_SERVER_ERROR masked; a bad token is still 401', async () => {
    const me = await s.t.request('/api/auth/me', { token: alice.token });
    expect(me.status).toBe(500);
    expect(await me.json()).toEqual({ detail: 'Internal server error' });
    expect((await s.t.request('/api/auth/me', { token: 'not-a-token' })).status).toBe(401);

    const graphql = await s.t.request('/graphql', { method: 'POST', token: alice.token, json: { query: '{ me { id } }' } });
    const body = (await graphql.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]).toMatchObject({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(JSON.stringify(body)).not.toContain('database unreachable');
  });
});
