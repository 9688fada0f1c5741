import { expect, test } from 'bun:test';
import type { ServerWebSocket } from 'bun';
import type { PublicUser } from '../services/auth.service';
import type { PresenceTicket } from '../services/presence.service';
import { SocketQuota } from '../services/socket-quota';
import type { SocketState } from './socket-session';
import { CLOSE, holdSocket, OpenSockets, openingState, releaseSocket } from './socket-session';

/** A socket that records how it was closed (`closed` settles then), and takes itself out of `open` as Bun's close handler would. */
function fakeSocket(open?: OpenSockets<SocketState>) {
  let closedWith: (close: { code: number; reason: string }) => void = () => {};
  const closed = new Promise<{ code: number; reason: string }>((resolve) => (closedWith = resolve));
  const ws = {
    data: openingState(),
    close: (code: number, reason: string) => {
      closedWith({ code, reason });
      open?.remove(ws);
    },
  } as unknown as ServerWebSocket<SocketState>;
  return { ws, closed };
}

test('open sockets: each takes a slot, any can leave, and the last one out stops the expiry timer', () => {
  const open = new OpenSockets<SocketState>();
  const sockets = Array.from({ length: 5 }, () => fakeSocket(open).ws);
  for (const ws of sockets) open.add(ws);
  expect(open.size).toBe(5);
  expect(open.sweeping).toBe(true);
  // Out of the middle, twice, and a socket that is not in the list changes nothing.
  open.remove(sockets[1]!);
  open.remove(sockets[1]!);
  open.remove(fakeSocket().ws);
  open.remove(sockets[0]!);
  expect(open.size).toBe(3);
  expect(
    sockets
      .slice(2)
      .map((ws) => ws.data.slot)
      .sort(),
  ).toEqual([0, 1, 2]);
  for (const ws of sockets.slice(2)) open.remove(ws);
  expect(open.size).toBe(0);
  expect(open.sweeping).toBe(false);
});

test('a socket whose token has expired is closed with 4401 "Token expired" within a second; the others stay open', async () => {
  const open = new OpenSockets<SocketState>();
  const expired = [fakeSocket(open), fakeSocket(open)];
  const valid = fakeSocket(open);
  const unauthenticated = fakeSocket(open);
  for (const { ws } of expired) ws.data.expiresAt = Date.now() - 1;
  valid.ws.data.expiresAt = Date.now() + 3_600_000;
  for (const { ws } of [...expired, valid, unauthenticated]) open.add(ws);
  expect(await Promise.all(expired.map(({ closed }) => closed))).toEqual([CLOSE.tokenExpired, CLOSE.tokenExpired]);
  expect(open.size).toBe(2);
  open.closeAll(1001, 'Going away');
  expect(await valid.closed).toEqual({ code: 1001, reason: 'Going away' });
  expect(await unauthenticated.closed).toEqual({ code: 1001, reason: 'Going away' });
  expect(open.sweeping).toBe(false);
});

test('a hold counts the socket in its user presence, whose count is the quota; release gives it back once', async () => {
  let connected = 0;
  const ticket = {} as PresenceTicket;
  const presence = { connect: () => (connected++, ticket), disconnect: (given: PresenceTicket | null) => given && connected-- };
  const sockets = new SocketQuota(1, () => connected);
  const session = { user: { id: 7, username: 'ana' } as PublicUser, expiresAt: Date.now() + 60_000 };
  const first = fakeSocket();
  expect(holdSocket({ sockets, presence }, session, first.ws)).toBe(true);
  expect(first.ws.data).toMatchObject({ expiresAt: session.expiresAt, presence: ticket });
  // Over the quota: closed with 4429 at once, nothing held.
  const second = fakeSocket();
  expect(holdSocket({ sockets, presence }, session, second.ws)).toBe(false);
  expect(await second.closed).toEqual(CLOSE.tooManySockets);
  expect(second.ws.data.presence).toBeNull();
  releaseSocket({ presence }, first.ws);
  releaseSocket({ presence }, first.ws);
  expect(connected).toBe(0);
});

test('a socket opening once presence has closed (the server going away) is closed with 1001 and holds nothing', async () => {
  // Presence counts nothing once closed, so the quota could not count this socket either.
  const presence = { connect: () => null, disconnect: () => {} };
  const sockets = new SocketQuota(1, () => 0);
  const late = fakeSocket();
  expect(holdSocket({ sockets, presence }, { user: { id: 7, username: 'ana' } as PublicUser, expiresAt: Date.now() + 60_000 }, late.ws)).toBe(false);
  expect(await late.closed).toEqual(CLOSE.shuttingDown);
  expect(late.ws.data).toMatchObject({ expiresAt: Number.POSITIVE_INFINITY, presence: null });
});
