import { Database } from 'bun:sqlite';
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database as AppDatabase } from '../src/db/client';
import { WebhookDeliveryWorker } from '../src/services/webhooks/delivery-worker';
import { WebhookOutbox } from '../src/services/webhooks/outbox';
import { systemResolver } from '../src/services/webhooks/send';
import { type Instance, ok, signUpOn, startInstance } from './support/cluster';
import { captureLogs } from './support/logs';
import { startReceiver } from './support/webhook-receiver';

/**
 * The webhook outbox against crashes: a server killed with SIGKILL while a delivery is in flight
 * loses nothing (the next server sends it once the dead one's lease has run out), and a database
 * that fails under the worker costs it rounds, never the process.
 */

const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-webhook-crash-'));
const instances: Instance[] = [];
const receiver = startReceiver();
afterAll(async () => {
  await Promise.all(instances.map((instance) => instance.kill()));
  await receiver.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('kill -9 while a delivery is in flight: the next server sends it', async () => {
  const env = {
    DATABASE_URL: `file:${join(dir, 'crash.db')}`,
    SECRET_KEY: 'webhook-crash-test-secret-key-0123456789abcdef',
    WEBHOOK_ALLOW_PRIVATE: '1',
    WEBHOOK_TIMEOUT_MS: '30000',
    MESSAGE_RATE_LIMIT: '0',
  };
  const first = await startInstance('first', env);
  instances.push(first);
  const user = await signUpOn(first, 'crash');
  const chat = await ok<{ id: number }>(first.request('/api/chats', { method: 'POST', token: user.token, json: { name: 'crash' } }));
  const created = await first.request(`/api/chats/${chat.id}/webhooks`, {
    method: 'POST',
    token: user.token,
    json: { url: receiver.url, events: ['message.created'] },
  });
  expect(created.status).toBe(201);

  // The first attempt is never answered: the server dies holding its lease.
  receiver.answerNext('hang');
  const message = await ok<{ id: number }>(
    first.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: user.token, json: { content: 'survives' } }),
  );
  await receiver.next((d) => d.json.data.message_id === message.id);
  first.proc.kill(9);
  await first.exited;

  // The dead server's lease (2 × its 30 s timeout + 2 s) is ended by hand, as time passing would end it.
  const sqlite = new Database(join(dir, 'crash.db'));
  expect(sqlite.query("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending' AND lease_token IS NOT NULL").get()).toEqual({ n: 1 });
  sqlite.run("UPDATE webhook_deliveries SET lease_until = NULL, lease_token = NULL WHERE status = 'pending'");
  sqlite.close();
  const second = await startInstance('second', env);
  instances.push(second);
  const resent = await receiver.next((d, index) => index > 0 && d.json.data.message_id === message.id);
  expect(resent.json.id).toBe(receiver.received[0]!.json.id);
  expect(resent.body).toBe(receiver.received[0]!.body);
  // Two servers start in it, each after its own migration process.
}, 20_000);

test('a database that fails under the worker costs it rounds, never the process; it stops on demand', async () => {
  const logs = captureLogs('warn');
  let claims = 0;
  let threeFailed: () => void;
  const failedThrice = new Promise<void>((resolve) => (threeFailed = resolve));
  const failing = {
    $queryRaw: () => {
      // A fourth claim starts only once the third's failure was logged.
      if (++claims === 4) threeFailed();
      return Promise.reject(new Error('Connection terminated unexpectedly'));
    },
    $executeRaw: () => Promise.reject(new Error('Connection terminated unexpectedly')),
  } as unknown as AppDatabase;
  const settings = { allowPrivate: true, timeoutMs: 1000, retryWindowMs: 1000, retryBaseMs: 1, pollMs: 1 };
  const outbox = new WebhookOutbox(failing);
  const worker = new WebhookDeliveryWorker(failing, 'sqlite', settings, outbox, systemResolver, logs.log);
  worker.start();
  await failedThrice;
  await worker.stop();
  const lines = logs.lines().filter((line) => line.msg.startsWith('webhook deliveries could not be claimed'));
  expect(lines.length).toBeGreaterThanOrEqual(3);
  expect(lines[0]!.err?.message).toBe('Connection terminated unexpectedly');
});
