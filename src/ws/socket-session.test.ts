import { expect, test } from 'bun:test';
import type { ServerWebSocket } from 'bun';
import { CLOSE, TokenExpiries } from './socket-session';

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
  const held = sockets.map(({ ws, expiresAt }) => ({ ws, at: expiries.add(expiresAt, ws) }));
  expect(expiries.timers).toBe(1);
  const later = fakeSocket().ws;
  const laterAt = expiries.add(second + 5_000, later);
  expect(expiries.timers).toBe(2);
  for (const { ws, at } of held) expiries.remove(at, ws);
  expect(expiries.timers).toBe(1);
  expiries.remove(laterAt, later);
  expect(expiries.timers).toBe(0);
});

test('every socket of a second that comes is closed with 4401 "Token expired", and the timer is gone', async () => {
  const expiries = new TokenExpiries();
  const expiresAt = Date.now() + 20;
  const sockets = [fakeSocket(), fakeSocket(), fakeSocket()];
  const seconds = sockets.map(({ ws }) => expiries.add(expiresAt, ws));
  // One of them closed by its client before the expiry is not closed again.
  expiries.remove(seconds[2]!, sockets[2]!.ws);
  expect(await Promise.all(sockets.slice(0, 2).map(({ closed }) => closed))).toEqual([CLOSE.tokenExpired, CLOSE.tokenExpired]);
  expect(expiries.timers).toBe(0);
  // A release after the close (the close handler runs it) finds nothing to undo.
  expiries.remove(seconds[0]!, sockets[0]!.ws);
  expect(expiries.timers).toBe(0);
});
