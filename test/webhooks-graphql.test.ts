import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { DeliveryOutcome } from '../src/services/webhooks/delivery-worker';
import { verifyDelivery } from '../src/services/webhooks/signing';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { groupRoom } from './support/rooms';
import { type Receiver, startReceiver } from './support/webhook-receiver';

/** Webhooks and incoming hooks through GraphQL: the same rules as REST, domain errors with `extensions.code`. */

let t: TestApp;
let receiver: Receiver;
let owner: TestUser;
let member: TestUser;
let chatId: number;
beforeAll(async () => {
  receiver = startReceiver();
  t = await createTestApp({ WEBHOOK_ALLOW_PRIVATE: '1' });
  [owner, member] = [await signUp(t), await signUp(t)];
  chatId = await groupRoom(t, owner, [member], 'graphql hooks');
}, 30_000);
afterAll(async () => {
  await t.cleanup();
  await receiver.stop();
});

async function gql<T = any>(
  user: TestUser,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<{ data?: T; errors?: { message: string; extensions: { code: string } }[] }> {
  const response = await t.request('/graphql', { method: 'POST', token: user.token, json: { query, variables } });
  return (await response.json()) as { data?: T; errors?: { message: string; extensions: { code: string } }[] };
}

const CREATE = `mutation($chatId: ID!, $url: String!, $events: [WebhookEvent!]!) {
  createWebhook(chatId: $chatId, url: $url, events: $events) { secret webhook { id url events enabled } }
}`;

test('the owner creates a webhook, sees it and its deliveries, and deletes it; others are FORBIDDEN', async () => {
  const created = await gql(owner, CREATE, { chatId, url: receiver.url, events: ['MESSAGE_CREATED'] });
  const { secret, webhook } = created.data.createWebhook as { secret: string; webhook: { id: string; url: string; events: string[]; enabled: boolean } };
  expect(webhook).toMatchObject({ url: receiver.url, events: ['MESSAGE_CREATED'], enabled: true });

  const delivered = new Promise<DeliveryOutcome>((resolve) => {
    const stop = t.app.services.webhookWorker.onOutcome((outcome) => {
      stop();
      resolve(outcome);
    });
  });
  await gql(member, `mutation($chatId: ID!) { sendMessage(chatId: $chatId, content: "via graphql") { id } }`, { chatId });
  expect((await delivered).verdict).toBe('delivered');
  const sent = await receiver.next();
  expect(verifyDelivery(secret, sent.headers, sent.body)).toBe(true);
  expect(sent.json.data.content).toBe('via graphql');

  const listed = await gql(
    owner,
    `query($chatId: ID!) { webhooks(chatId: $chatId) { id enabled disabledReason deliveries { event status attempts responseStatus } } }`,
    {
      chatId,
    },
  );
  expect(listed.data.webhooks).toEqual([
    { id: webhook.id, enabled: true, disabledReason: null, deliveries: [{ event: 'MESSAGE_CREATED', status: 'DELIVERED', attempts: 1, responseStatus: 200 }] },
  ]);

  const forbidden = await gql(member, `query($chatId: ID!) { webhooks(chatId: $chatId) { id } }`, { chatId });
  expect(forbidden.errors?.[0]?.extensions.code).toBe('FORBIDDEN');
  const notYours = await gql(member, `mutation($chatId: ID!, $id: ID!) { deleteWebhook(chatId: $chatId, webhookId: $id) }`, { chatId, id: webhook.id });
  expect(notYours.errors?.[0]?.extensions.code).toBe('FORBIDDEN');

  expect((await gql(owner, `mutation($chatId: ID!, $id: ID!) { deleteWebhook(chatId: $chatId, webhookId: $id) }`, { chatId, id: webhook.id })).data).toEqual({
    deleteWebhook: true,
  });
  const gone = await gql(owner, `mutation($chatId: ID!, $id: ID!) { deleteWebhook(chatId: $chatId, webhookId: $id) }`, { chatId, id: webhook.id });
  expect(gone.errors?.[0]?.extensions.code).toBe('NOT_FOUND');
});

test('a URL that is not allowed is BAD_USER_INPUT', async () => {
  const strict = await createTestApp();
  try {
    const boss = await signUp(strict);
    const room = await groupRoom(strict, boss, [], 'strict');
    const response = await strict.request('/graphql', {
      method: 'POST',
      token: boss.token,
      json: { query: CREATE, variables: { chatId: room, url: 'https://169.254.169.254/latest', events: ['MEMBER_JOINED'] } },
    });
    const body = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]).toMatchObject({
      message: 'The webhook URL is not allowed: 169.254.169.254 is a cloud metadata address',
      extensions: { code: 'BAD_USER_INPUT' },
    });
  } finally {
    await strict.cleanup();
  }
});

test('the owner creates, lists and revokes incoming hooks; the token posts until revoked', async () => {
  const created = await gql(owner, `mutation($chatId: ID!) { createIncomingHook(chatId: $chatId, name: "Alerts") { token path hook { id name } } }`, {
    chatId,
  });
  const { token, path, hook } = created.data.createIncomingHook as { token: string; path: string; hook: { id: string; name: string } };
  expect(path).toBe(`/api/hooks/${token}`);
  expect(hook.name).toBe('Alerts');
  expect((await gql(owner, `query($chatId: ID!) { incomingHooks(chatId: $chatId) { id name } }`, { chatId })).data.incomingHooks).toEqual([hook]);
  expect((await gql(member, `query($chatId: ID!) { incomingHooks(chatId: $chatId) { id } }`, { chatId })).errors?.[0]?.extensions.code).toBe('FORBIDDEN');

  expect((await t.request(path, { method: 'POST', json: { content: 'disk 91% full' } })).status).toBe(200);
  const revoked = await gql(owner, `mutation($chatId: ID!, $id: ID!) { revokeIncomingHook(chatId: $chatId, hookId: $id) }`, { chatId, id: hook.id });
  expect(revoked.data).toEqual({ revokeIncomingHook: true });
  expect((await t.request(path, { method: 'POST', json: { content: 'disk 99% full' } })).status).toBe(404);
});
