import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import type { DeliveryOutcome } from '../src/services/webhooks/delivery-worker';
import { WebhookDeliveryWorker } from '../src/services/webhooks/delivery-worker';
import { WebhookOutbox } from '../src/services/webhooks/outbox';
import { MAX_WEBHOOKS_PER_CHAT } from '../src/services/webhooks/webhook.service';
import { systemResolver } from '../src/services/webhooks/send';
import { SIGNATURE_TOLERANCE_SECONDS, verifyDelivery } from '../src/services/webhooks/signing';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import { groupRoom } from './support/rooms';
import { type Receiver, startReceiver } from './support/webhook-receiver';

/**
 * Outgoing webhooks on one instance, against receivers on loopback: management and its refusals,
 * each event signed and delivered, retries after 5xx and timeouts, the disabled state, and the
 * outbox surviving a restart. Waits are on the worker's stored outcomes, never on the clock.
 */

let fake: FakeGemini;
let receiver: Receiver;
beforeAll(async () => {
  fake = await startFakeGemini();
}, 30_000);
afterAll(async () => {
  await fake.stop();
});

const silentLog = createLogger({ level: 'silent' });
const apps: TestApp[] = [];
const receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((t) => t.cleanup()));
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});

/** A test app that may send webhooks to loopback, with fast retries; `env` overrides. */
async function webhookApp(env: Record<string, string> = {}) {
  const t = await createTestApp({
    WEBHOOK_ALLOW_PRIVATE: '1',
    WEBHOOK_RETRY_BASE_MS: '20',
    WEBHOOK_TIMEOUT_MS: '2000',
    GEMINI_API_KEY: fake.apiKey,
    GEMINI_BASE_URL: fake.url,
    ...env,
  });
  apps.push(t);
  return t;
}

function newReceiver() {
  receiver = startReceiver();
  receivers.push(receiver);
  return receiver;
}

/** Resolves with the first stored outcome that `match` accepts. */
function outcome(t: TestApp, match: (outcome: DeliveryOutcome) => boolean): Promise<DeliveryOutcome> {
  return new Promise((resolve) => {
    const stop = t.app.services.webhookWorker.onOutcome((seen) => {
      if (!match(seen)) return;
      stop();
      resolve(seen);
    });
  });
}

interface CreatedWebhook {
  id: number;
  url: string;
  events: string[];
  secret: string;
  created_at: string;
  enabled: boolean;
}

async function addWebhook(t: TestApp, owner: TestUser, chatId: number, url: string, events: string[]): Promise<CreatedWebhook> {
  const response = await t.request(`/api/chats/${chatId}/webhooks`, { method: 'POST', token: owner.token, json: { url, events } });
  expect(response.status).toBe(201);
  return (await response.json()) as CreatedWebhook;
}

const ALL_EVENTS = ['message.created', 'message.updated', 'message.deleted', 'bot.answer.completed', 'member.joined', 'member.left'];

async function send(t: TestApp, user: TestUser, chatId: number, content: string) {
  const response = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: number };
}

async function deliveriesOf(t: TestApp, owner: TestUser, chatId: number, webhookId: number) {
  const response = await t.request(`/api/chats/${chatId}/webhooks/${webhookId}/deliveries`, { token: owner.token });
  expect(response.status).toBe(200);
  return (await response.json()) as {
    webhook: { enabled: boolean; disabled_reason: string | null };
    deliveries: { id: number; event: string; status: string; attempts: number; response_status: number | null; last_error: string | null }[];
  };
}

describe('managing webhooks', () => {
  test("the owner adds, lists and deletes a chat's webhooks; the secret is shown once", async () => {
    const t = await webhookApp();
    const [owner, member] = [await signUp(t), await signUp(t)];
    const chatId = await groupRoom(t, owner, [member], 'hooks');
    const created = await addWebhook(t, owner, chatId, 'https://hooks.example.com/in', ['message.created', 'member.left']);
    expect(created).toMatchObject({ url: 'https://hooks.example.com/in', events: ['message.created', 'member.left'], enabled: true });
    expect(created.secret).toMatch(/^whsec_[0-9a-f]{64}$/);

    const listed = await t.request(`/api/chats/${chatId}/webhooks`, { token: owner.token });
    const list = (await listed.json()) as Record<string, unknown>[];
    expect(list).toEqual([
      {
        id: created.id,
        chat_id: chatId,
        url: created.url,
        events: created.events,
        created_at: created.created_at,
        enabled: true,
        disabled_at: null,
        disabled_reason: null,
      },
    ]);
    expect(JSON.stringify(list)).not.toContain(created.secret);

    // A participant who is not the owner manages nothing.
    for (const [method, path] of [
      ['GET', `/api/chats/${chatId}/webhooks`],
      ['POST', `/api/chats/${chatId}/webhooks`],
      ['DELETE', `/api/chats/${chatId}/webhooks/${created.id}`],
      ['GET', `/api/chats/${chatId}/webhooks/${created.id}/deliveries`],
    ] as const) {
      const refused = await t.request(path, {
        method,
        token: member.token,
        json: method === 'POST' ? { url: 'https://x.example.com', events: ['message.created'] } : undefined,
      });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ detail: "Only the chat's owner can manage its webhooks" });
    }

    expect((await t.request(`/api/chats/${chatId}/webhooks/${created.id}`, { method: 'DELETE', token: owner.token })).status).toBe(200);
    expect((await t.request(`/api/chats/${chatId}/webhooks/${created.id}`, { method: 'DELETE', token: owner.token })).status).toBe(404);
    expect(await (await t.request(`/api/chats/${chatId}/webhooks`, { token: owner.token })).json()).toEqual([]);
    expect((await t.request(`/api/chats/999999/webhooks`, { token: owner.token })).status).toBe(404);
  });

  test('bad input is 422: an unknown or repeated event, no events, a URL that is not one', async () => {
    const t = await webhookApp();
    const owner = await signUp(t);
    const chatId = await groupRoom(t, owner, [], 'bad input');
    for (const json of [
      { url: 'https://a.example.com', events: ['message.sent'] },
      { url: 'https://a.example.com', events: ['message.created', 'message.created'] },
      { url: 'https://a.example.com', events: [] },
      { url: 'not a url', events: ['message.created'] },
      { events: ['message.created'] },
    ]) {
      const response = await t.request(`/api/chats/${chatId}/webhooks`, { method: 'POST', token: owner.token, json });
      expect(response.status).toBe(422);
    }
  });
  test('a chat holds at most MAX_WEBHOOKS_PER_CHAT webhooks, even when many are added at once; deleting one makes room', async () => {
    const t = await webhookApp();
    const owner = await signUp(t);
    const chatId = await groupRoom(t, owner, [], 'many hooks');
    const add = () =>
      t.request(`/api/chats/${chatId}/webhooks`, {
        method: 'POST',
        token: owner.token,
        json: { url: 'https://a.example.com/in', events: ['message.created'] },
      });
    const answers = await Promise.all(Array.from({ length: MAX_WEBHOOKS_PER_CHAT + 5 }, add));
    expect(answers.filter((r) => r.status === 201)).toHaveLength(MAX_WEBHOOKS_PER_CHAT);
    const refused = answers.filter((r) => r.status !== 201);
    expect(refused.map((r) => r.status)).toEqual([400, 400, 400, 400, 400]);
    expect(await refused[0]!.json()).toEqual({ detail: `This chat has ${MAX_WEBHOOKS_PER_CHAT} webhooks already: delete one before adding another` });
    const list = (await (await t.request(`/api/chats/${chatId}/webhooks`, { token: owner.token })).json()) as { id: number }[];
    expect(list).toHaveLength(MAX_WEBHOOKS_PER_CHAT);
    expect((await t.request(`/api/chats/${chatId}/webhooks/${list[0]!.id}`, { method: 'DELETE', token: owner.token })).status).toBe(200);
    expect((await add()).status).toBe(201);
  });
});

describe('deliveries', () => {
  test('each event reaches the webhook once, signed; the signature fails on a changed body and on a replay', async () => {
    const t = await webhookApp();
    const hook = newReceiver();
    const [owner, member, late] = [await signUp(t), await signUp(t), await signUp(t)];
    const chatId = await groupRoom(t, owner, [member], 'events');
    const webhook = await addWebhook(t, owner, chatId, hook.url, ALL_EVENTS);

    const sent = await send(t, member, chatId, 'hello hooks');
    const created = await hook.next((d) => d.json.type === 'message.created');
    expect(created.json).toMatchObject({ type: 'message.created', webhook_id: webhook.id, chat_id: chatId });
    expect(created.json.data).toMatchObject({ chat_id: chatId, message_id: sent.id, username: member.username, content: 'hello hooks', is_bot: false });
    expect(created.json.data.message).toMatchObject({ id: sent.id, content: 'hello hooks', edited_at: null, reactions: [] });
    expect(created.headers.get('x-webhook-id')).toBe(String(created.json.id));
    expect(created.headers.get('x-webhook-event')).toBe('message.created');
    expect(created.headers.get('content-type')).toBe('application/json');

    // The receiver's check: the signature verifies with the secret, and fails when anything changed.
    const now = Number(created.headers.get('x-webhook-timestamp'));
    expect(verifyDelivery(webhook.secret, created.headers, created.body, now)).toBe(true);
    expect(verifyDelivery(webhook.secret, created.headers, created.body.replace('hello hooks', 'hello hookz'), now)).toBe(false);
    expect(verifyDelivery('whsec_wrong', created.headers, created.body, now)).toBe(false);
    // Replayed later than the tolerance, it is refused even though it was signed.
    expect(verifyDelivery(webhook.secret, created.headers, created.body, now + SIGNATURE_TOLERANCE_SECONDS + 1)).toBe(false);
    const restamped = new Headers(created.headers);
    restamped.set('x-webhook-timestamp', String(now + 1000));
    expect(verifyDelivery(webhook.secret, restamped, created.body, now + 1000)).toBe(false);

    await t.request(`/api/chats/${chatId}/messages/${sent.id}`, { method: 'PATCH', token: member.token, json: { content: 'hello, edited' } });
    expect((await hook.next((d) => d.json.type === 'message.updated')).json.data).toMatchObject({ message_id: sent.id, content: 'hello, edited' });
    await t.request(`/api/chats/${chatId}/messages/${sent.id}`, { method: 'DELETE', token: member.token });
    expect((await hook.next((d) => d.json.type === 'message.deleted')).json.data).toEqual({ chat_id: chatId, message_id: sent.id });
    await t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: owner.token, json: { username: late.username } });
    expect((await hook.next((d) => d.json.type === 'member.joined')).json.data).toEqual({
      chat_id: chatId,
      user_id: late.id,
      username: late.username,
      invited_by: owner.username,
    });
    await t.request(`/api/chats/${chatId}/leave`, { method: 'POST', token: late.token });
    expect((await hook.next((d) => d.json.type === 'member.left' && d.json.data.how === 'left')).json.data).toEqual({
      chat_id: chatId,
      user_id: late.id,
      username: late.username,
      how: 'left',
    });
    await t.request(`/api/chats/${chatId}/participants/${member.id}`, { method: 'DELETE', token: owner.token });
    expect((await hook.next((d) => d.json.type === 'member.left' && d.json.data.how === 'removed')).json.data.user_id).toBe(member.id);

    fake.reply({ kind: 'text', chunks: ['Forty', '-two'] });
    const ask = await send(t, owner, chatId, '/bot what is the answer?');
    const completed = await hook.next((d) => d.json.type === 'bot.answer.completed');
    expect(completed.json.data).toMatchObject({
      chat_id: chatId,
      is_complete: true,
      full_response: 'Forty-two',
      message: { content: 'Forty-two', is_bot: true },
    });
    expect(completed.json.data.message_id).toBeGreaterThan(ask.id);

    // Every event once: no delivery was sent twice.
    const ids = hook.received.map((d) => d.json.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(hook.received.map((d) => d.json.type).filter((type) => type !== 'message.created')).toEqual([
      'message.updated',
      'message.deleted',
      'member.joined',
      'member.left',
      'member.left',
      'bot.answer.completed',
    ]);
  });

  test('a webhook gets only the events it named, and nothing once deleted', async () => {
    const t = await webhookApp();
    const hook = newReceiver();
    const [owner, member] = [await signUp(t), await signUp(t)];
    const chatId = await groupRoom(t, owner, [], 'filtered');
    const webhook = await addWebhook(t, owner, chatId, hook.url, ['member.joined']);
    await send(t, owner, chatId, 'not for the hook');
    await t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: owner.token, json: { username: member.username } });
    await hook.next((d) => d.json.type === 'member.joined');
    expect(hook.received.map((d) => d.json.type)).toEqual(['member.joined']);

    await t.request(`/api/chats/${chatId}/webhooks/${webhook.id}`, { method: 'DELETE', token: owner.token });
    await t.request(`/api/chats/${chatId}/leave`, { method: 'POST', token: member.token });
    const stored = await t.app.services.db.webhookDelivery.count();
    expect(stored).toBe(0);
  });

  test('a 500 and a timeout are retried until delivered; every attempt sends the same body', async () => {
    const t = await webhookApp({ WEBHOOK_TIMEOUT_MS: '300' });
    const hook = newReceiver();
    const owner = await signUp(t);
    const chatId = await groupRoom(t, owner, [], 'retries');
    const webhook = await addWebhook(t, owner, chatId, hook.url, ['message.created']);
    hook.answerNext(500, 'hang', 503);
    const delivered = outcome(t, (o) => o.verdict === 'delivered');
    await send(t, owner, chatId, 'try, try again');
    await delivered;
    expect(hook.received).toHaveLength(4);
    expect(new Set(hook.received.map((d) => d.body)).size).toBe(1);
    // Signed afresh at each attempt: each one verifies.
    for (const attempt of hook.received) expect(verifyDelivery(webhook.secret, attempt.headers, attempt.body)).toBe(true);
    const { deliveries } = await deliveriesOf(t, owner, chatId, webhook.id);
    expect(deliveries).toEqual([
      expect.objectContaining({ event: 'message.created', status: 'delivered', attempts: 4, response_status: 200, last_error: null }),
    ]);
  });

  test('a 4xx is not retried; the webhook stays enabled', async () => {
    const t = await webhookApp();
    const hook = newReceiver();
    const owner = await signUp(t);
    const chatId = await groupRoom(t, owner, [], 'refused');
    const webhook = await addWebhook(t, owner, chatId, hook.url, ['message.created']);
    hook.answerNext(400);
    const failed = outcome(t, (o) => o.verdict === 'failed');
    await send(t, owner, chatId, 'bad request');
    await failed;
    const { webhook: state, deliveries } = await deliveriesOf(t, owner, chatId, webhook.id);
    expect(state.enabled).toBe(true);
    expect(deliveries).toEqual([
      expect.objectContaining({ status: 'failed', attempts: 1, response_status: 400, last_error: 'answered 400: receiver says no' }),
    ]);
    expect(hook.received).toHaveLength(1);
  });

  test('a webhook that keeps failing past the retry window is disabled, says why, and gets nothing more', async () => {
    const t = await webhookApp({ WEBHOOK_RETRY_WINDOW_MS: '0' });
    const hook = newReceiver();
    hook.answerAlways(502);
    const owner = await signUp(t);
    const chatId = await groupRoom(t, owner, [], 'failing');
    const webhook = await addWebhook(t, owner, chatId, hook.url, ['message.created']);
    const failed = outcome(t, (o) => o.verdict === 'failed');
    await send(t, owner, chatId, 'into the void');
    await failed;
    const { webhook: state, deliveries } = await deliveriesOf(t, owner, chatId, webhook.id);
    expect(state.enabled).toBe(false);
    expect(state.disabled_reason).toContain('Deliveries kept failing');
    expect(state.disabled_reason).toContain('answered 502');
    expect(deliveries).toEqual([expect.objectContaining({ status: 'failed', response_status: 502 })]);
    const listed = (await (await t.request(`/api/chats/${chatId}/webhooks`, { token: owner.token })).json()) as { enabled: boolean }[];
    expect(listed[0]!.enabled).toBe(false);
    // Disabled: new events are not even written for it.
    await send(t, owner, chatId, 'after the end');
    expect((await deliveriesOf(t, owner, chatId, webhook.id)).deliveries).toHaveLength(1);
  });

  test('deliveries in the outbox survive a restart of the app, mid-retry', async () => {
    const first = await webhookApp({ WEBHOOK_RETRY_BASE_MS: '60000' });
    const hook = newReceiver();
    hook.answerAlways(503);
    const owner = await signUp(first);
    const chatId = await groupRoom(first, owner, [], 'restart');
    const webhook = await addWebhook(first, owner, chatId, hook.url, ['message.created']);
    const retrying = outcome(first, (o) => o.verdict === 'retry');
    const sent = await send(first, owner, chatId, 'outlives its server');
    await retrying;
    await first.app.close();

    // The same database, a new app: the delivery is due again once its retry time comes; here, now.
    hook.answerAlways(200);
    const second = await createApp(first.config, { migrate: true });
    try {
      await second.services.db.webhookDelivery.updateMany({ data: { nextAttemptAt: new Date() } });
      const delivered = new Promise<void>((resolve) => second.services.webhookWorker.onOutcome((o) => o.verdict === 'delivered' && resolve()));
      second.services.webhookWorker.wake();
      await delivered;
      const last = hook.received.at(-1)!;
      expect(last.json).toMatchObject({ type: 'message.created', webhook_id: webhook.id, data: { message_id: sent.id } });
      const row = await second.services.db.webhookDelivery.findFirstOrThrow({ where: { webhookId: webhook.id } });
      expect(row.status).toBe('delivered');
      expect(row.attempts).toBe(2);
    } finally {
      await second.close();
    }
  });
});

test('a delivery claimed by an instance that died is sent once its lease has run out', async () => {
  const t = await webhookApp();
  const hook = newReceiver();
  const owner = await signUp(t);
  const chatId = await groupRoom(t, owner, [], 'orphaned');
  const webhook = await addWebhook(t, owner, chatId, hook.url, ['message.created']);
  const db = t.app.services.db;
  // The worker is stopped first, so the row is written as a dead instance left it: claimed, its lease over.
  await t.app.services.webhookWorker.stop();
  await send(t, owner, chatId, 'left behind');
  await db.webhookDelivery.updateMany({ data: { leaseToken: 'dead-instance', leaseUntil: new Date(Date.now() - 1) } });
  const worker = new WebhookDeliveryWorker(db, t.config.database.engine, t.config.webhooks, new WebhookOutbox(db), systemResolver, silentLog);
  try {
    expect(await worker.round()).toBe(1);
    expect(hook.received.map((d) => d.json.data.content)).toEqual(['left behind']);
    expect((await deliveriesOf(t, owner, chatId, webhook.id)).deliveries[0]).toMatchObject({ status: 'delivered', attempts: 1 });
    // Delivered: a second round finds nothing to send.
    expect(await worker.round()).toBe(0);
  } finally {
    await worker.stop();
  }
});

test('webhook settings are checked at start-up, with the fix in the message', () => {
  const base = { DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/unused', SECRET_KEY: 'config-test-secret-key-0123456789abcdef' };
  expect(() => loadConfig({ ...base, WEBHOOK_ALLOW_PRIVATE: 'yes' })).toThrow(
    'WEBHOOK_ALLOW_PRIVATE=yes is not valid: set it to 1 (on) or 0 (off), or unset it (off).',
  );
  expect(() => loadConfig({ ...base, WEBHOOK_TIMEOUT_MS: '0' })).toThrow('WEBHOOK_TIMEOUT_MS=0 is not valid');
  expect(loadConfig({ ...base, WEBHOOK_ALLOW_PRIVATE: '1' }).webhooks).toMatchObject({ allowPrivate: true, timeoutMs: 5000, retryWindowMs: 86_400_000 });
  expect(loadConfig(base).webhooks.allowPrivate).toBe(false);
});
