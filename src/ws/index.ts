import type { ServerWebSocket, WebSocketHandler } from 'bun';
import type { ChatSocketData, ChatSocketHub } from './chat-socket';
import type { GraphqlSocketData } from './graphql-socket';

export type SocketData = ChatSocketData | GraphqlSocketData;

export interface WebSockets {
  handler: WebSocketHandler<SocketData>;
  /** Closes every open socket, of both protocols, with `code` (1001 when the server goes away). */
  closeAll: (code: number, reason: string) => void;
}

/**
 * Bun allows one websocket handler per server: dispatch on the `kind` each upgrade set.
 * Limits are the server's: frames over 64 KiB are refused (close 1009), idle sockets are pinged
 * and dropped, and a consumer that falls 1 MiB behind is closed instead of growing memory.
 */
export function createWebSockets(chat: ChatSocketHub, graphql: WebSocketHandler<unknown>): WebSockets {
  const graphqlHandler = graphql as WebSocketHandler<SocketData>;
  const open = new Set<ServerWebSocket<SocketData>>();
  return {
    handler: {
      maxPayloadLength: 64 * 1024,
      idleTimeout: 60,
      sendPings: true,
      backpressureLimit: 1024 * 1024,
      closeOnBackpressureLimit: true,
      open: (ws) => {
        open.add(ws);
        return ws.data.kind === 'chat' ? chat.open(ws as never) : graphqlHandler.open?.(ws);
      },
      drain: (ws) => (ws.data.kind === 'chat' ? chat.drain(ws as never) : undefined),
      message: (ws, message) => (ws.data.kind === 'chat' ? chat.message(ws as never, message) : graphqlHandler.message?.(ws, message)),
      close: (ws, code, reason) => {
        open.delete(ws);
        // Whichever side closed and why: the socket's quota place and expiry timer go with it.
        ws.data.release?.();
        return ws.data.kind === 'chat' ? chat.close(ws as never) : graphqlHandler.close?.(ws, code, reason);
      },
    },
    closeAll: (code, reason) => {
      for (const ws of open) ws.close(code, reason);
    },
  };
}
