import { Database } from 'bun:sqlite';
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Frame } from './support/sockets';
import { type Instance, ok, signUpOn, startInstance } from './support/cluster';

/**
 * A message is acknowledged (echoed to its sender with its id) only once it is durable: a crash
 * under load, or a graceful stop, loses no acknowledged message. Real processes on a SQLite file.
 */

const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-durability-'));
const instances: Instance[] = [];
afterAll(async () => {
  await Promise.all(instances.map((instance) => instance.kill()));
  rmSync(dir, { recursive: true, force: true });
});

async function start(name: string, database: string) {
  const instance = await startInstance(name, {
    DATABASE_URL: `file:${join(dir, database)}`,
    SECRET_KEY: 'durability-test-secret-key-0123456789abcdef',
    WS_RATE_LIMIT: '0',
    MESSAGE_RATE_LIMIT: '0',
  });
  instances.push(instance);
  return instance;
}

/**
 * Sends messages over `/ws`, keeping `inFlight` unacknowledged, and records each acknowledged id
 * with its content until `interrupt` (called once `interruptAfter` acks arrived) ends the run.
 */
async function loadUntilInterrupted(instance: Instance, interruptAfter: number, interrupt: () => void) {
  const user = await signUpOn(instance, 'durable');
  const chat = await ok<{ id: number }>(instance.request('/api/chats', { method: 'POST', token: user.token, json: { name: 'durable' } }));
  const socket = instance.kit.chat(user.token);
  await socket.opened;
  await socket.join(chat.id);
  const acknowledged = new Map<number, string>();
  let sent = 0;
  const sendOne = () => socket.send({ type: 'message', chat_id: chat.id, content: `load-${++sent}` });
  socket.ws.addEventListener('message', (event) => {
    const frame = JSON.parse(String(event.data)) as Frame;
    if (frame.type !== 'message') return;
    acknowledged.set(frame.message_id as number, frame.content as string);
    if (acknowledged.size === interruptAfter) interrupt();
    if (socket.ws.readyState === WebSocket.OPEN) sendOne();
  });
  for (let i = 0; i < 8; i++) sendOne();
  const closed = await socket.closed;
  return { chat, user, acknowledged, closed };
}

function storedMessages(database: string): Map<number, string> {
  const db = new Database(join(dir, database), { readonly: true });
  try {
    const rows = db.query<{ id: number; content: string }, []>('SELECT id, content FROM messages').all();
    return new Map(rows.map((row) => [row.id, row.content]));
  } finally {
    db.close();
  }
}

describe('no acknowledged message is lost', () => {
  test('kill -9 under load, then restart: every acknowledged message is stored', async () => {
    const first = await start('crashing', 'crash.db');
    const { chat, user, acknowledged } = await loadUntilInterrupted(first, 300, () => first.proc.kill(9));
    await first.exited;
    expect(acknowledged.size).toBeGreaterThanOrEqual(300);

    const restarted = await start('restarted', 'crash.db');
    const stored = storedMessages('crash.db');
    for (const [id, content] of acknowledged) expect(stored.get(id)).toBe(content);
    // The room keeps working after the restart.
    const after = await ok<{ id: number }>(
      restarted.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: user.token, json: { content: 'after the crash' } }),
    );
    expect(after.id).toBeGreaterThan(Math.max(...acknowledged.keys()));
  }, 60_000);

  test('SIGTERM under load drains: sockets close with 1001, the process exits 0, every acknowledged message is stored', async () => {
    const instance = await start('stopping', 'stop.db');
    const { acknowledged, closed } = await loadUntilInterrupted(instance, 200, () => instance.proc.kill('SIGTERM'));
    expect(closed.code).toBe(1001);
    expect(await instance.exited).toBe(0);
    const stored = storedMessages('stop.db');
    for (const [id, content] of acknowledged) expect(stored.get(id)).toBe(content);
  }, 60_000);
});
