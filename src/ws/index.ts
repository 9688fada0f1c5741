import type { WebSocketHandler } from 'bun';
import type { Logger } from '../log';
import { CLOSE, OpenSockets, releaseSocket } from './socket-session';
import type { Metrics, SocketTransport } from '../metrics';
import type { ChatSocketData, ChatSocketHub } from './chat-socket';
import type { GraphqlSocketData } from './graphql-socket';

export type SocketData = ChatSocketData | GraphqlSocketData;

export interface WebSockets {
  handler: WebSocketHandler<SocketData>;
  /** Closes every open socket, of both protocols, with `code` (1001 when the server goes away). */
  closeAll: (code: number, reason: string) => void;
}

const transportOf = (data: SocketData): SocketTransport => (data.kind === 'chat' ? 'ws' : 'graphql-ws');

/**
 * Bun allows one websocket handler per server: dispatch on the `kind` each upgrade set.
 * Limits are the server's: frames over 64 KiB are refused (close 1009), idle sockets are pinged
 * and dropped, and a consumer that falls 1 MiB behind is closed instead of growing memory.
 * Each socket's opening and closing is logged (its user, how long it lived, the close code) and
 * counted in the open-sockets gauge. A graphql-ws socket learns its user at `connection_init`,
 * after it opened: its opening line has none.
 */
export function createWebSockets(
  chat: ChatSocketHub,
  graphql: WebSocketHandler<unknown>,
  holders: Parameters<typeof releaseSocket>[0],
  log: Logger,
  metrics: Metrics,
): WebSockets {
  const graphqlHandler = graphql as WebSocketHandler<SocketData>;
  const open = new OpenSockets<SocketData>();
  const socketLog = log.child({ component: 'sockets' });
  return {
    handler: {
      maxPayloadLength: 64 * 1024,
      idleTimeout: 60,
      sendPings: true,
      backpressureLimit: 1024 * 1024,
      closeOnBackpressureLimit: true,
      open: (ws) => {
        open.add(ws);
        const transport = transportOf(ws.data);
        metrics.openSockets.inc({ transport });
        socketLog.debug({ transport, userId: ws.data.user?.id ?? null }, 'socket opened');
        return ws.data.kind === 'chat' ? chat.open(ws as never) : graphqlHandler.open?.(ws);
      },
      drain: (ws) => (ws.data.kind === 'chat' ? chat.drain(ws as never) : undefined),
      message: async (ws, message) => {
        if (ws.data.kind === 'chat') return chat.message(ws as never, message);
        try {
          await graphqlHandler.message?.(ws, message);
        } catch (error) {
          // A rejection escaping a Bun websocket handler ends the process: whatever graphql-ws lets
          // through costs this socket (1011), never the server.
          socketLog.error({ err: error, transport: 'graphql-ws' }, 'a graphql-ws message failed');
          ws.close(CLOSE.internalError.code, CLOSE.internalError.reason);
        }
      },
      close: (ws, code, reason) => {
        const transport = transportOf(ws.data);
        const durationMs = Math.round(performance.now() - ws.data.openedAt);
        open.remove(ws);
        metrics.openSockets.dec({ transport });
        socketLog.info({ transport, userId: ws.data.user?.id ?? null, durationMs, code }, 'socket closed');
        // Whichever side closed and why: its count in its user's presence (and so its quota place) goes with it.
        releaseSocket(holders, ws);
        return ws.data.kind === 'chat' ? chat.close(ws as never) : graphqlHandler.close?.(ws, code, reason);
      },
    },
    closeAll: (code, reason) => open.closeAll(code, reason),
  };
}
