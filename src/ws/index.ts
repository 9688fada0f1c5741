import type { WebSocketHandler } from 'bun';
import type { ChatSocketData, ChatSocketHub } from './chat-socket';
import type { GraphqlSocketData } from './graphql-socket';

export type SocketData = ChatSocketData | GraphqlSocketData;

/**
 * Bun allows one websocket handler per server: dispatch on the `kind` each upgrade set.
 * Limits are the server's: frames over 64 KiB are refused (close 1009), idle sockets are pinged
 * and dropped, and a consumer that falls 1 MiB behind is closed instead of growing memory.
 */
export function createWebSocketHandler(chat: ChatSocketHub, graphql: WebSocketHandler<unknown>): WebSocketHandler<SocketData> {
  const graphqlHandler = graphql as WebSocketHandler<SocketData>;
  return {
    maxPayloadLength: 64 * 1024,
    idleTimeout: 60,
    sendPings: true,
    backpressureLimit: 1024 * 1024,
    closeOnBackpressureLimit: true,
    open: (ws) => (ws.data.kind === 'chat' ? chat.open(ws as never) : graphqlHandler.open?.(ws)),
    message: (ws, message) => (ws.data.kind === 'chat' ? chat.message(ws as never, message) : graphqlHandler.message?.(ws, message)),
    close: (ws, code, reason) => (ws.data.kind === 'chat' ? chat.close(ws as never) : graphqlHandler.close?.(ws, code, reason)),
  };
}
