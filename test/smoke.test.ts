import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createTestApp, signUp, type TestApp } from './support/app';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.cleanup());

test('health answers as the original did, plus dependency states', async () => {
  const response = await t.request('/health');
  expect(response.status).toBe(200);
  expect(await response.json()).toMatchObject({ status: 'healthy' });
});

test('a registered user creates a chat and reads it back', async () => {
  const user = await signUp(t);
  const created = await t.request('/api/chats', { method: 'POST', token: user.token, json: { name: 'My Chat', is_group: true } });
  expect(created.status).toBe(200);
  const chat = await created.json();
  expect(chat).toMatchObject({ name: 'My Chat', is_group: true, owner_id: user.id });
  const listed = await (await t.request('/api/chats', { token: user.token })).json();
  expect(listed).toEqual([{ ...chat, unread_count: 0, last_message: null, last_message_time: null }]);
});
