/**
 * The bench's yardstick: the least a server can do while speaking the same `/ws` frames — Bun's native
 * topic fan-out over `bun:sqlite` WAL inserts. No auth (the token is taken as the username), no
 * membership checks, no validation beyond JSON.parse, no ORM, no GraphQL, no pub/sub layer.
 * Whatever the project spends above this is the cost of its features.
 *
 * BASELINE_COMMIT=row (default) inserts and commits each message as it is read. BASELINE_COMMIT=group
 * commits as the project does: every message read in one turn of the event loop goes in one
 * transaction, then each is published. Both are durable before the publish (WAL, synchronous=NORMAL).
 *
 *   PORT=8123 BASELINE_DB=/tmp/x.db [BASELINE_COMMIT=group] bun bench/baseline-server.ts
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

interface Received {
  chatId: number;
  username: string;
  content: string;
}

/** Publishes a stored message to its room, in the project's frame shape (same keys, same order). */
function publish(message: Received, id: number, createdAt: string): void {
  server.publish(
    `chat:${message.chatId}`,
    JSON.stringify({
      type: 'message',
      chat_id: message.chatId,
      message_id: id,
      username: message.username,
      content: message.content,
      is_bot: false,
      created_at: createdAt,
    }),
  );
}

const insertRow = (message: Received, createdAt: string) => insert.get(message.chatId, message.username, message.content, createdAt)!.id;
const insertTurn = db.transaction((messages: Received[], createdAt: string) => messages.map((message) => insertRow(message, createdAt)));
const groupCommit = process.env.BASELINE_COMMIT === 'group';
let turn: Received[] = [];

function receive(message: Received): void {
  if (!groupCommit) {
    const createdAt = new Date().toISOString();
    return publish(message, insertRow(message, createdAt), createdAt);
  }
  turn.push(message);
  if (turn.length > 1) return;
  // The turn's messages in one transaction, published once it committed.
  setImmediate(() => {
    const messages = turn;
    turn = [];
    const createdAt = new Date().toISOString();
    const ids = insertTurn(messages, createdAt);
    messages.forEach((message, index) => publish(message, ids[index]!, createdAt));
  });
}

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
        frame = JSON.parse(String(raw)) as typeof frame;
      } catch {
        ws.send(errorFrame('Invalid JSON'));
        return;
      }
      const chatId = Number(frame.chat_id);
      if (frame.type === 'join') {
        ws.subscribe(`chat:${chatId}`);
      } else if (frame.type === 'message' && typeof frame.content === 'string') {
        receive({ chatId, username: ws.data.username, content: frame.content });
      } else {
        ws.send(errorFrame('Unknown message type'));
      }
    },
  },
});

console.log(`baseline listening on http://127.0.0.1:${server.port}`);

const shutdown = () => {
  void server.stop(true);
  db.close();
  process.exit(0);
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
