import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { DeliveryOutcome } from '../src/services/webhooks/delivery-worker';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { groupRoom } from './support/rooms';
import { type Receiver, startReceiver } from './support/webhook-receiver';

/**
 * Where webhooks may not go (SSRF): refused at creation when the URL says so, and at delivery after
 * DNS when a name resolves to a refused address, each class of address; redirects not followed; an
 * endless answer not read. DNS is stood in for by the app's `resolveHost`, so a public-looking name
 * can resolve to loopback as an attacker's would.
 */

const DNS: Record<string, string[]> = {
  'loopback.example.test': ['127.0.0.1'],
  'private.example.test': ['10.20.30.40'],
  'linklocal.example.test': ['169.254.10.10'],
  'metadata.example.test': ['169.254.169.254'],
  'mixed.example.test': ['93.184.216.34', '192.168.1.20'],
  'ipv6-loopback.example.test': ['::1'],
};

let strict: TestApp;
let receiver: Receiver;
let owner: TestUser;
let chatId: number;
beforeAll(async () => {
  receiver = startReceiver();
  strict = await createTestApp(
    { WEBHOOK_RETRY_BASE_MS: '20' },
    { resolveHost: (host) => Promise.resolve((DNS[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))) },
  );
  owner = await signUp(strict);
  chatId = await groupRoom(strict, owner, [], 'safety');
}, 30_000);
afterAll(async () => {
  await strict.cleanup();
  await receiver.stop();
});

const create = (t: TestApp, url: string) =>
  t.request(`/api/chats/${chatId}/webhooks`, { method: 'POST', token: owner.token, json: { url, events: ['message.created'] } });

function outcome(t: TestApp, match: (outcome: DeliveryOutcome) => boolean): Promise<DeliveryOutcome> {
  return new Promise((resolve) => {
    const stop = t.app.services.webhookWorker.onOutcome((seen) => {
      if (!match(seen)) return;
      stop();
      resolve(seen);
    });
  });
}

describe('refused at creation', () => {
  test.each([
    ['http://hooks.example.com/in', 'only https URLs are allowed'],
    ['https://127.0.0.1/in', '127.0.0.1 is a loopback address'],
    ['https://[::1]/in', '::1 is a loopback address'],
    ['https://localhost:8443/in', 'localhost is a loopback address'],
    ['https://10.1.2.3/in', '10.1.2.3 is a private address'],
    ['https://192.168.0.10/in', '192.168.0.10 is a private address'],
    ['https://169.254.1.1/in', '169.254.1.1 is a link-local address'],
    ['https://169.254.169.254/latest/meta-data', '169.254.169.254 is a cloud metadata address'],
    ['https://[fd00:ec2::254]/in', 'fd00:ec2::254 is a cloud metadata address'],
  ])('%s', async (url, reason) => {
    const response = await create(strict, url);
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({ detail: [{ type: 'value_error', loc: ['body', 'url'], msg: `The webhook URL is not allowed: ${reason}` }] });
  });
});

describe('refused at delivery, after DNS', () => {
  test.each([
    ['loopback.example.test', '127.0.0.1, a loopback address'],
    ['private.example.test', '10.20.30.40, a private address'],
    ['linklocal.example.test', '169.254.10.10, a link-local address'],
    ['metadata.example.test', '169.254.169.254, a cloud metadata address'],
    ['mixed.example.test', '192.168.1.20, a private address'],
    ['ipv6-loopback.example.test', '::1, a loopback address'],
  ])('%s: nothing is sent, and the webhook is disabled saying why', async (host, reason) => {
    // The receiver's own port: were the name followed to loopback, it would get the delivery.
    const url = `https://${host}:${new URL(receiver.url).port}/hook`;
    const created = await create(strict, url);
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: number };
    const failed = outcome(strict, (o) => o.webhookId === id && o.verdict === 'failed');
    const before = receiver.received.length;
    await strict.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: owner.token, json: { content: `to ${host}` } });
    await failed;
    expect(receiver.received.length).toBe(before);
    const { webhook, deliveries } = (await (await strict.request(`/api/chats/${chatId}/webhooks/${id}/deliveries`, { token: owner.token })).json()) as {
      webhook: { enabled: boolean; disabled_reason: string };
      deliveries: { status: string; last_error: string; response_status: number | null }[];
    };
    expect(deliveries).toEqual([expect.objectContaining({ status: 'failed', response_status: null, last_error: `${host} resolves to ${reason}` })]);
    expect(webhook).toMatchObject({ enabled: false, disabled_reason: `Its URL is not allowed: ${host} resolves to ${reason}` });
    await strict.request(`/api/chats/${chatId}/webhooks/${id}`, { method: 'DELETE', token: owner.token });
  });
});

describe('with WEBHOOK_ALLOW_PRIVATE=1', () => {
  let open: TestApp;
  let target: ReturnType<typeof Bun.serve>;
  let redirected = 0;
  beforeAll(async () => {
    open = await createTestApp({ WEBHOOK_ALLOW_PRIVATE: '1', WEBHOOK_TIMEOUT_MS: '2000' });
    target = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(request) {
        const path = new URL(request.url).pathname;
        if (path === '/moved') return new Response(null, { status: 302, headers: { location: `http://127.0.0.1:${target.port}/elsewhere` } });
        if (path === '/elsewhere') {
          redirected++;
          return new Response('ok');
        }
        // An answer that never ends: the sender reads its first KiB and hangs up.
        const endless = new ReadableStream({
          pull(controller) {
            controller.enqueue(new TextEncoder().encode('x'.repeat(16_384)));
          },
        });
        return new Response(endless, { status: 500 });
      },
    });
  }, 30_000);
  afterAll(async () => {
    await open.cleanup();
    await target.stop(true);
  });

  test('plain http to loopback is allowed; a redirect is not followed, and fails the delivery', async () => {
    const me = await signUp(open);
    const room = await groupRoom(open, me, [], 'redirects');
    const created = await open.request(`/api/chats/${room}/webhooks`, {
      method: 'POST',
      token: me.token,
      json: { url: `http://127.0.0.1:${target.port}/moved`, events: ['message.created'] },
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: number };
    const failed = outcome(open, (o) => o.webhookId === id && o.verdict === 'failed');
    await open.request(`/api/chats/${room}/messages`, { method: 'POST', token: me.token, json: { content: 'moved?' } });
    await failed;
    expect(redirected).toBe(0);
    const { deliveries } = (await (await open.request(`/api/chats/${room}/webhooks/${id}/deliveries`, { token: me.token })).json()) as {
      deliveries: { status: string; response_status: number; last_error: string }[];
    };
    expect(deliveries[0]).toMatchObject({ status: 'failed', response_status: 302, last_error: 'answered 302 (redirects are not followed)' });
  });

  test('an endless answer is read no further than its first KiB', async () => {
    const me = await signUp(open);
    const room = await groupRoom(open, me, [], 'endless');
    const created = await open.request(`/api/chats/${room}/webhooks`, {
      method: 'POST',
      token: me.token,
      json: { url: `http://127.0.0.1:${target.port}/endless`, events: ['message.created'] },
    });
    const { id } = (await created.json()) as { id: number };
    const retried = outcome(open, (o) => o.webhookId === id && o.verdict === 'retry');
    await open.request(`/api/chats/${room}/messages`, { method: 'POST', token: me.token, json: { content: 'say a lot' } });
    // The attempt ended (the answer never does), and its start is kept for the owner.
    await retried;
    const { deliveries } = (await (await open.request(`/api/chats/${room}/webhooks/${id}/deliveries`, { token: me.token })).json()) as {
      deliveries: { status: string; response_status: number; last_error: string }[];
    };
    expect(deliveries[0]).toMatchObject({ status: 'pending', response_status: 500, last_error: `answered 500: ${'x'.repeat(200)}` });
    await open.request(`/api/chats/${room}/webhooks/${id}`, { method: 'DELETE', token: me.token });
  });
});
