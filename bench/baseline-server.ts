/**
 * The bench's yardstick: the least a server can do while speaking the same `/ws` frames — Bun's native
 * topic fan-out over one `bun:sqlite` WAL insert per message. No auth (the token is taken as the
 * username), no membership checks, no validation beyond JSON.parse, no ORM, no GraphQL, no pub/sub
 * layer. Whatever the project spends above this is the cost of its features.
 *
 *   PORT=8123 BASELINE_DB=/tmp/x.db bun bench/baseline-server.ts
 */
import { Database } from 'bun:sqlite';

interface SocketData {
  username: string;
}

const port = Number(process.env.PORT ?? 8123);
const db = new Database(process.env.BASELINE_DB ?? ':memory:', { create: true });
db.exec('PRAGMA journal_mode = WAL');
db.exec('PRAGMA synchronous = NORMAL');
db.exec(`CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id INTEGER NOT NULL,
  username TEXT NOT NULL,
  content TEXT NOT NULL,
  created_at TEXT NOT NULL
)`);
const insert = db.prepare<{ id: number }, [number, string, string, string]>(
  'INSERT INTO messages (chat_id, username, content, created_at) VALUES (?, ?, ?, ?) RETURNING id',
);
const errorFrame = (error: string) => JSON.stringify({ type: 'error', error });

const server = Bun.serve<SocketData>({
  port,
  hostname: '127.0.0.1',
  fetch(request, server) {
    const url = new URL(request.url);
    if (url.pathname === '/health') return Response.json({ status: 'healthy' });
    if (url.pathname === '/ws') {
      const data: SocketData = { username: url.searchParams.get('token') || 'anonymous' };
      return server.upgrade(request, { data }) ? undefined : new Response('Upgrade Required', { status: 426 });
    }
    return Response.json({ detail: 'Not Found' }, { status: 404 });
  },
  // The project's socket limits, so both servers run under the same rules.
  websocket: {
    maxPayloadLength: 64 * 1024,
    idleTimeout: 60,
    sendPings: true,
    backpressureLimit: 1024 * 1024,
    closeOnBackpressureLimit: true,
    message(ws, raw) {
      let frame: { type?: unknown; chat_id?: unknown; content?: unknown };
      try {
        frame = JSON.parse(String(raw));
      } catch {
        ws.send(errorFrame('Invalid JSON'));
        return;
      }
      const chatId = Number(frame.chat_id);
      if (frame.type === 'join') {
        ws.subscribe(`chat:${chatId}`);
      } else if (frame.type === 'message' && typeof frame.content === 'string') {
        const createdAt = new Date().toISOString();
        const { id } = insert.get(chatId, ws.data.username, frame.content, createdAt)!;
        // Same keys in the same order as the project's frame, so clients parse both alike.
        server.publish(
          `chat:${chatId}`,
          JSON.stringify({
            type: 'message',
            chat_id: chatId,
            message_id: id,
            username: ws.data.username,
            content: frame.content,
            is_bot: false,
            created_at: createdAt,
          }),
        );
      } else {
        ws.send(errorFrame('Unknown message type'));
      }
    },
  },
});

console.log(`baseline listening on http://127.0.0.1:${server.port}`);

const shutdown = () => {
  server.stop(true);
  db.close();
  process.exit(0);
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
