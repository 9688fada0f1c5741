import { expect, test } from 'bun:test';
import { captureLogs } from '../../test/support/logs';
import type { Database } from '../db/client';
import { Metrics } from '../metrics';
import type { PublicUser } from './auth.service';
import type { PresenceHost, PresenceStore } from './presence-store';
import { LocalPresenceStore } from './presence-store';
import { PresenceService } from './presence.service';
import type { PubSub, UserEvent, UserPresenceEvent } from './pubsub';

const ana: PublicUser = { id: 1, username: 'ana', email: 'ana@example.com', createdAt: new Date(0), displayName: null, avatarKey: null };
const BEN = 2;

/**
 * A presence service on the in-memory store, with the database and the bus stubbed: ben shares a
 * chat with everyone, and what is published to him is recorded; `next()` waits for the next one.
 */
function presence(graceMs: number, storeOf: (host: PresenceHost) => PresenceStore = (host) => new LocalPresenceStore(host)) {
  const told: UserPresenceEvent[] = [];
  const waiting: ((event: UserPresenceEvent) => void)[] = [];
  // The sharers query is a tagged template whose one value is the table of the users asked about
  // (idsTable), whose one value is their ids as a JSON array.
  const sharers = (_sql: TemplateStringsArray, asked: { values: [string] }) =>
    Promise.resolve((JSON.parse(asked.values[0]) as number[]).map((userId) => ({ user_id: userId, sharer_id: BEN })));
  const lastSeenWrites: number[] = [];
  const updateMany = ({ where }: { where: { id: number } }) => {
    lastSeenWrites.push(where.id);
    return Promise.resolve({ count: 1 });
  };
  const db = { $queryRaw: sharers, user: { updateMany } };
  const pubsub = {
    publish: (_topic: string, _userId: number, event: UserPresenceEvent) => {
      told.push(event);
      waiting.shift()?.(event);
    },
  };
  const service = new PresenceService(db as unknown as Database, pubsub as unknown as PubSub, graceMs, captureLogs().log, new Metrics(), storeOf);
  const next = () => new Promise<UserPresenceEvent>((resolve) => waiting.push(resolve));
  return { service, told, next, lastSeenWrites };
}

test('online with the first socket, offline once the last has been closed for the grace; sockets in between change nothing', async () => {
  const { service, told, next } = presence(10);
  const first = service.connect(ana);
  await service.idle();
  const second = service.connect(ana);
  service.disconnect(first);
  await service.idle();
  expect(service.tracking(ana.id)).toEqual({ sockets: 1, grace: false });
  expect(told.map((event) => event.status)).toEqual(['online']);

  const offline = next();
  service.disconnect(second);
  await service.idle();
  expect(service.tracking(ana.id)).toEqual({ sockets: 0, grace: true });
  expect(await offline).toMatchObject({ type: 'presence', userId: ana.id, username: 'ana', status: 'offline' });
  expect(told.map((event) => event.status)).toEqual(['online', 'offline']);
  expect(told[1]!.version).toBeGreaterThan(told[0]!.version);
  expect(service.tracking(ana.id)).toBeNull();
  await service.close();
});

test('a socket opened within the grace stops it: no offline, no second online', async () => {
  const { service, told } = presence(60_000);
  service.disconnect(service.connect(ana));
  await service.idle();
  expect(service.tracking(ana.id)).toEqual({ sockets: 0, grace: true });
  service.connect(ana);
  await service.idle();
  expect(service.tracking(ana.id)).toEqual({ sockets: 1, grace: false });
  expect(told.map((event) => event.status)).toEqual(['online']);
  await service.close();
  expect(service.tracking(ana.id)).toBeNull();
});

test('of one user, a change older than one already passed on is stale; other users and other events are not affected', async () => {
  const { service } = presence(0);
  const change = (userId: number, version: number): UserEvent => ({ type: 'presence', userId, username: 'u', status: 'online', lastSeenAt: null, version });
  expect(service.isCurrent(change(1, 5))).toBe(true);
  // The same change reaches every recipient on this instance.
  expect(service.isCurrent(change(1, 5))).toBe(true);
  expect(service.isCurrent(change(1, 4))).toBe(false);
  expect(service.isCurrent(change(2, 1))).toBe(true);
  expect(service.isCurrent(change(1, 6))).toBe(true);
  expect(service.isCurrent({ type: 'left_chat', chatId: 1 })).toBe(true);
  await service.close();
});

test('the in-memory store: one change per transition; the users its host counts are online, those in their grace too; on close, all of them are left to be persisted offline', async () => {
  // The host's count of sockets, as the presence service keeps it.
  const sockets = new Map<number, number>();
  const store = new LocalPresenceStore({
    socketsHere: (userId) => sockets.get(userId) ?? 0,
    usersHere: () => [...sockets].filter(([, count]) => count > 0).map(([id]) => ({ id, username: id === ana.id ? ana.username : 'ben' })),
  });
  sockets.set(ana.id, 1);
  const online = await store.arrive(ana);
  expect(online).toMatchObject({ userId: ana.id, status: 'online', lastSeenAt: null });
  expect(await store.onlineAmong([ana.id, BEN])).toEqual(new Set([ana.id]));
  expect(await store.settle(ana.id)).toBeNull();
  sockets.set(ana.id, 0);
  expect(await store.depart(ana)).toBe(true);
  // In her grace: still online, and back within it, nothing to announce.
  expect(await store.onlineAmong([ana.id, BEN])).toEqual(new Set([ana.id]));
  sockets.set(ana.id, 1);
  expect(await store.arrive(ana)).toBeNull();
  sockets.set(ana.id, 0);
  await store.depart(ana);
  const offline = await store.settle(ana.id);
  expect(offline).toMatchObject({ userId: ana.id, username: ana.username, status: 'offline' });
  expect(offline?.lastSeenAt).toBeInstanceOf(Date);
  expect(offline!.version).toBeGreaterThan(online!.version);
  expect(await store.settle(ana.id)).toBeNull();
  expect(await store.onlineAmong([ana.id])).toEqual(new Set());
  // On close: ben with a socket open, ana in her grace.
  sockets.set(BEN, 1);
  await store.arrive({ id: BEN, username: 'ben' });
  sockets.set(ana.id, 1);
  await store.arrive(ana);
  sockets.set(ana.id, 0);
  await store.depart(ana);
  const left = await store.close();
  expect(left.map(({ userId, status }) => [userId, status]).sort()).toEqual([
    [ana.id, 'offline'],
    [BEN, 'offline'],
  ]);
  for (const change of left) expect(change.lastSeenAt).toBeInstanceOf(Date);
});

test("what the store hands over while it closes (a sweep of the cluster's graces in flight) is still announced and persisted before close returns", async () => {
  const CAROL = 3;
  const { service, told, lastSeenWrites } = presence(10, (host) => {
    const local = new LocalPresenceStore(host);
    // Like the Redis store's sweep, in flight when closing began: it has taken carol off the graces already.
    local.close = () => {
      host.announce([{ userId: CAROL, username: 'carol', status: 'offline', lastSeenAt: new Date(1_000), version: 7 }]);
      return Promise.resolve([]);
    };
    return local;
  });
  await service.close();
  expect(told).toEqual([{ type: 'presence', userId: CAROL, username: 'carol', status: 'offline', lastSeenAt: new Date(1_000), version: 7 }]);
  expect(lastSeenWrites).toEqual([CAROL]);
  // Once the store has closed, nothing more is announced.
  service.announce([{ userId: CAROL, username: 'carol', status: 'online', lastSeenAt: null, version: 8 }]);
  await service.idle();
  expect(told).toHaveLength(1);
});
