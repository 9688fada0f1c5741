import { expect, test } from 'bun:test';
import type { ServerWebSocket } from 'bun';
import type { PublicUser } from '../services/auth.service';
import type { PresenceService } from '../services/presence.service';
import { SocketQuota } from '../services/socket-quota';
import { CLOSE, holdSocket, TokenExpiries } from './socket-session';

/** A socket that records how it was closed; `closed` settles then. */
function fakeSocket() {
  let closedWith: (close: { code: number; reason: string }) => void = () => {};
  const closed = new Promise<{ code: number; reason: string }>((resolve) => (closedWith = resolve));
  const ws = { close: (code: number, reason: string) => closedWith({ code, reason }) } as unknown as ServerWebSocket<unknown>;
  return { ws, closed };
}

test('sockets whose tokens expire in the same second share one timer; removing the last one stops it', () => {
  const expiries = new TokenExpiries();
  const second = Math.ceil(Date.now() / 1000) * 1000 + 60_000;
  const sockets = Array.from({ length: 100 }, (_, i) => ({ ws: fakeSocket().ws, expiresAt: second - 999 + i * 9 }));
  for (const { ws, expiresAt } of sockets) expiries.add(expiresAt, ws);
  expect(expiries.timers).toBe(1);
  const later = fakeSocket().ws;
  expiries.add(second + 5_000, later);
  expect(expiries.timers).toBe(2);
  for (const { ws, expiresAt } of sockets) expiries.remove(expiresAt, ws);
  expect(expiries.timers).toBe(1);
  expiries.remove(second + 5_000, later);
  expect(expiries.timers).toBe(0);
});

test('every socket of a second that comes is closed with 4401 "Token expired", and the timer is gone', async () => {
  const expiries = new TokenExpiries();
  const expiresAt = Date.now() + 20;
  const sockets = [fakeSocket(), fakeSocket(), fakeSocket()];
  for (const { ws } of sockets) expiries.add(expiresAt, ws);
  // One of them closed by its client before the expiry is not closed again.
  expiries.remove(expiresAt, sockets[2]!.ws);
  expect(await Promise.all(sockets.slice(0, 2).map(({ closed }) => closed))).toEqual([CLOSE.tokenExpired, CLOSE.tokenExpired]);
  expect(expiries.timers).toBe(0);
  // A release after the close (the close handler runs it) finds nothing to undo.
  expiries.remove(expiresAt, sockets[0]!.ws);
  expect(expiries.timers).toBe(0);
});

test('a hold gives its quota place and its presence back once, however often it is released', async () => {
  const sockets = new SocketQuota(1);
  const presence = { connected: 0, connect: () => ({ ticket: true }), disconnect: () => presence.connected-- };
  const session = { user: { id: 7, username: 'ana' } as PublicUser, expiresAt: Date.now() + 60_000 };
  const first = fakeSocket();
  const hold = holdSocket({ sockets, presence: presence as unknown as PresenceService }, session, first.ws);
  expect(sockets.openFor(7)).toBe(1);
  // Over the quota: closed with 4429 at once, nothing held.
  const second = fakeSocket();
  expect(holdSocket({ sockets, presence: presence as unknown as PresenceService }, session, second.ws)).toBeNull();
  expect(await second.closed).toEqual(CLOSE.tooManySockets);
  hold!.release();
  hold!.release();
  expect(sockets.openFor(7)).toBe(0);
  expect(presence.connected).toBe(-1);
});
