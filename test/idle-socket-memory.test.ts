import { afterAll, beforeAll, expect, test } from 'bun:test';
import { heapStats } from 'bun:jsc';
import type { ServerWebSocket } from 'bun';
import type { ChatSocketData } from '../src/ws/chat-socket';
import type { SocketData } from '../src/ws';
import { createTestApp, type TestApp } from './support/app';

/**
 * What an idle authenticated `/ws` socket keeps on the server's heap, counted rather than timed: the
 * objects that stay after full collections, per socket. Idle memory per socket is most of a chat
 * server's memory (most sockets are idle), and each object held per socket costs it on every one.
 * Users are looked up once before their sockets open, so their cached rows are not counted (a
 * reconnecting user's is cached already). The clients run in a child process: their objects are not
 * on this heap.
 */

/**
 * Enough that what the rest of the process frees or keeps meanwhile is small beside the sockets': at 300,
 * objects freed elsewhere during the count once took a whole test run's measure to 0.97 a socket.
 */
const SOCKETS = 600;
/**
 * Measured here: 6.1–6.6 a socket, and with Redis 8.2 (the socket, its data, its count in its user's presence,
 * its user's event channel and their place in the hub). With 300 sockets: 6.9–7.0; 7.9 while the single process's presence store kept every online
 * user a second time; 11.7 while the lookups of the sockets' chats and of who shares one wrote a placeholder
 * per id, and every batch size left objects of its own behind (a cached statement among them); 15.8 while each socket also
 * had a quota entry, a hold object, an entry in the open sockets' map and in its token's expiry second, and
 * its user's channel a registration and a listener of its own. With Redis: 9.9, and 12.8 and 18.3 before.
 */
const maxObjectsPerSocket = (redis: boolean) => (redis ? 11 : 8);

let t: TestApp;
let server: ReturnType<typeof Bun.serve>;
/** The server's side of each socket opened, to wait for its memberships to load. */
const opened: ServerWebSocket<SocketData>[] = [];

beforeAll(async () => {
  t = await createTestApp();
  const { websocket } = t.app;
  server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: (request, bunServer) => t.app.fetch(request, bunServer),
    websocket: {
      ...websocket,
      open: (ws) => {
        opened.push(ws);
        return websocket.open?.(ws);
      },
    },
  });
});

afterAll(async () => {
  await server.stop(true);
  await t.cleanup();
});

/** Child mode's script: opens a socket per token, 20 at a time, prints "open", and holds them until killed. */
const HOLD_SOCKETS = `
const [url, ...tokens] = process.argv.slice(1);
const sockets = [];
for (let start = 0; start < tokens.length; start += 20) {
  await Promise.all(tokens.slice(start, start + 20).map((token) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url + '?token=' + token);
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('a socket failed to open'));
    sockets.push(ws);
  })));
}
console.log('open');
setInterval(() => {}, 1 << 30);
`;

/**
 * Waits out what opening a socket starts and finishes later: loading its memberships, its user's event
 * channel subscribing (through Redis when there is one), the presence change being stored. Then the
 * socket holds what it will hold while idle.
 */
async function settledOpening(users: { id: number }[]): Promise<void> {
  const { pubsub, presence } = t.app.services;
  await Promise.all(opened.map((ws) => (ws.data as ChatSocketData).membershipChange));
  // A listener added to a channel shares the channel's subscription: ready when the socket's is.
  await Promise.all(
    users.map((user) => {
      const registration = pubsub.on('user:event', user.id, () => {});
      return registration.ready.finally(() => registration.stop());
    }),
  );
  await presence.idle();
}

/** The heap's live objects, after full collections. */
function liveObjects(): number {
  Bun.gc(true);
  Bun.gc(true);
  return heapStats().objectCount;
}

test("an idle authenticated /ws socket holds a bounded number of objects on the server's heap", async () => {
  const { db, auth } = t.app.services;
  // Straight into the table: registering through argon2 would take seconds for nothing measured here.
  await db.user.createMany({
    data: Array.from({ length: SOCKETS + 1 }, (_, i) => ({
      username: `idle${i}`,
      usernameKey: `idle${i}`,
      email: `idle${i}@example.com`,
      hashedPassword: '',
    })),
  });
  const users = await db.user.findMany({ where: { username: { startsWith: 'idle' } }, select: { id: true }, orderBy: { id: 'asc' } });
  const tokens = await Promise.all(users.map((user) => auth.issueToken(user.id)));
  for (const user of users) await auth.userById(user.id);
  const url = `ws://127.0.0.1:${server.port}/ws`;

  // One socket first, so that code loaded on first use is on the heap before the count starts.
  const first = new WebSocket(`${url}?token=${tokens[0]}`);
  await new Promise((resolve) => (first.onopen = resolve));
  const firstClosed = new Promise((resolve) => (first.onclose = resolve));
  first.close();
  await firstClosed;
  await settledOpening(users.slice(0, 1));
  opened.length = 0;

  const before = liveObjects();
  const clients = Bun.spawn([process.execPath, '-e', HOLD_SOCKETS, url, ...tokens.slice(1)], { stdout: 'pipe', stderr: 'inherit' });
  try {
    const reader = clients.stdout.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain('open');
    expect(opened.length).toBe(SOCKETS);
    await settledOpening(users.slice(1));
    expect(opened.every((ws) => ws.readyState === WebSocket.OPEN)).toBe(true);
    const perSocket = (liveObjects() - before) / SOCKETS;
    expect(perSocket).toBeGreaterThan(1);
    expect(perSocket).toBeLessThanOrEqual(maxObjectsPerSocket(t.config.redisUrl !== null));
  } finally {
    clients.kill();
    await clients.exited;
  }
}, 60_000);
