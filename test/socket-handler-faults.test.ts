import { expect, test } from 'bun:test';
import type { WebSocketHandler } from 'bun';
import { Metrics } from '../src/metrics';
import type { SocketData } from '../src/ws';
import { createWebSockets } from '../src/ws';
import type { ChatSocketHub } from '../src/ws/chat-socket';
import type { GraphqlSocketData } from '../src/ws/graphql-socket';
import { openingState } from '../src/ws/socket-session';
import { captureLogs } from './support/logs';

/**
 * A rejection escaping a Bun websocket handler ends the process. Whatever a graphql-ws message
 * throws past graphql-ws costs that socket a 1011 close and a logged error, never the server.
 */
test('a graphql-ws message that throws closes its socket with 1011 and is logged; the server goes on', async () => {
  const logs = captureLogs();
  const metrics = new Metrics();
  const failing: WebSocketHandler<unknown> = { message: () => Promise.reject(new Error('thrown past graphql-ws')) };
  const sockets = createWebSockets({} as ChatSocketHub, failing, { presence: { disconnect: () => {} } }, logs.log, metrics);
  const server = Bun.serve<SocketData>({
    port: 0,
    fetch: (request, server) => {
      const data: GraphqlSocketData = { kind: 'graphql', user: null, operations: new Map(), ...openingState() };
      return server.upgrade(request, { data }) ? undefined : new Response('Upgrade Required', { status: 426 });
    },
    websocket: sockets.handler,
  });
  try {
    const closes = [1, 2].map(async () => {
      const ws = new WebSocket(`ws://localhost:${server.port}/graphql`);
      const closed = new Promise<number>((resolve) => ws.addEventListener('close', (event) => resolve(event.code)));
      await new Promise((resolve) => ws.addEventListener('open', resolve));
      ws.send('{"type":"connection_init"}');
      return closed;
    });
    expect(await Promise.all(closes)).toEqual([1011, 1011]);
    expect(logs.lines().filter((line) => line.msg === 'a graphql-ws message failed')).toHaveLength(2);
  } finally {
    await server.stop(true);
    metrics.close();
  }
});
