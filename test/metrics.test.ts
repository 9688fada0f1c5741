import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import type { TestApp, TestUser } from './support/app';
import { createTestApp, signUp } from './support/app';
import { servedTestApp } from './support/sockets';

/**
 * `GET /metrics`: every metric is exposed, and each moves when its event happens (counted, never
 * timed); the endpoint obeys METRICS_TOKEN and METRICS=off; apps in one process keep theirs apart.
 */

const METRICS = [
  'gemini_coop_http_requests_total',
  'gemini_coop_http_request_duration_seconds',
  'gemini_coop_open_sockets',
  'gemini_coop_messages_stored_total',
  'gemini_coop_message_batch_size',
  'gemini_coop_frames_delivered_total',
  'gemini_coop_bot_answers_total',
  'gemini_coop_bot_time_to_first_token_seconds',
  'gemini_coop_bot_answer_duration_seconds',
  'gemini_coop_bot_tokens_total',
  'gemini_coop_pubsub_up',
  'gemini_coop_pubsub_publish_errors_total',
  'gemini_coop_presence_changes_total',
  'gemini_coop_rate_limit_refusals_total',
];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of an exposition in Prometheus' text format. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[name!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

let fake: FakeGemini;
beforeAll(async () => {
  fake = await startFakeGemini();
});
const served = servedTestApp(() => ({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url, LOGIN_RATE_LIMIT: '2' }));
let alice: TestUser;
beforeAll(async () => {
  alice = await signUp(served.t);
});
afterAll(() => fake.stop());

/** Reads `/metrics` of `app` and returns the value of one series (0 when it has no sample yet). */
async function scrape(app: TestApp = served.t) {
  const response = await app.request('/metrics');
  expect(response.status).toBe(200);
  const samples = parse(await response.text());
  return (name: string, labels: Record<string, string> = {}) => {
    const matching = samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
    if (matching.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} names ${matching.length} series`);
    return matching[0]?.value ?? 0;
  };
}

async function newChat(user: TestUser, name: string): Promise<number> {
  const response = await served.t.request('/api/chats', { method: 'POST', token: user.token, json: { name } });
  return ((await response.json()) as { id: number }).id;
}

const send = (user: TestUser, chatId: number, content: string) =>
  served.t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } });

test('every metric is exposed in the text format, with the process metrics beside them', async () => {
  const response = await served.t.request('/metrics');
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  const text = await response.text();
  for (const name of METRICS) expect(text).toContain(`# TYPE ${name} `);
  expect(text).toContain('# TYPE process_cpu_seconds_total counter');
  expect(text).toContain('# TYPE nodejs_heap_size_used_bytes gauge');
});

test('an HTTP request is counted under its route template and status, and its latency observed', async () => {
  const chatId = await newChat(alice, 'http');
  const before = await scrape();
  const labels = { method: 'GET', route: '/api/chats/:chat_id/messages' };
  expect((await served.t.request(`/api/chats/${chatId}/messages?limit=3`, { token: alice.token })).status).toBe(200);
  const after = await scrape();
  expect(after('gemini_coop_http_requests_total', { ...labels, status: '200' }) - before('gemini_coop_http_requests_total', { ...labels, status: '200' })).toBe(
    1,
  );
  expect(after('gemini_coop_http_request_duration_seconds_count', labels) - before('gemini_coop_http_request_duration_seconds_count', labels)).toBe(1);
});

test('a message sent over REST is stored once, in one batch, and delivered to the /ws and graphql-ws sockets of the chat', async () => {
  const chatId = await newChat(alice, 'delivery');
  const socket = served.kit.chat(alice.token);
  await socket.opened;
  await socket.sync();
  const graphql = served.kit.graphql(alice.token);
  const added = graphql.subscribe(
    'subscription ($id: ID!) { messageAdded(chatId: $id) { id } }',
    { id: chatId },
    { field: 'messageAdded', ready: ['chat:message', chatId] },
  );
  await added.ready;
  const before = await scrape();
  expect((await send(alice, chatId, 'counted')).status).toBe(200);
  await socket.next('message');
  await added.next(() => true, 'the message');
  const after = await scrape();
  const moved = (name: string, labels: Record<string, string> = {}) => after(name, labels) - before(name, labels);
  expect(moved('gemini_coop_messages_stored_total')).toBe(1);
  expect(moved('gemini_coop_message_batch_size_count')).toBe(1);
  expect(moved('gemini_coop_message_batch_size_sum')).toBe(1);
  // One topic publish reaching the one /ws socket, one graphql-ws result.
  expect(moved('gemini_coop_frames_delivered_total', { transport: 'ws' })).toBe(1);
  expect(moved('gemini_coop_frames_delivered_total', { transport: 'graphql-ws' })).toBe(1);
});

test('open sockets go up while a socket is open and down once it closed, per transport', async () => {
  const gauge = async (): Promise<[ws: number, graphqlWs: number]> => {
    const read = await scrape();
    return [read('gemini_coop_open_sockets', { transport: 'ws' }), read('gemini_coop_open_sockets', { transport: 'graphql-ws' })];
  };
  const [ws, graphqlWs] = await gauge();
  const closed = served.closes.count;
  const socket = served.kit.chat(alice.token);
  await socket.opened;
  await socket.sync();
  expect(await gauge()).toEqual([ws + 1, graphqlWs]);
  const graphql = served.kit.graphql(alice.token);
  await graphql.subscribe('subscription { viewerEvents { __typename } }', {}, { field: 'viewerEvents', ready: ['user:event', alice.id] }).ready;
  expect(await gauge()).toEqual([ws + 1, graphqlWs + 1]);
  await socket.close();
  await graphql.client.dispose();
  await served.closes.closed(closed + 2);
  expect(await gauge()).toEqual([ws, graphqlWs]);
});

test('a user coming online is counted once, however many sockets they open', async () => {
  const newcomer = await signUp(served.t);
  const online = async () => (await scrape())('gemini_coop_presence_changes_total', { status: 'online' });
  const before = await online();
  for (const socket of [served.kit.chat(newcomer.token), served.kit.chat(newcomer.token)]) {
    await socket.opened;
    await socket.sync();
  }
  await served.t.app.services.presence.idle();
  expect((await online()) - before).toBe(1);
});

test('a login refused over LOGIN_RATE_LIMIT is counted as a login refusal', async () => {
  const victim = await signUp(served.t);
  const refusals = async () => (await scrape())('gemini_coop_rate_limit_refusals_total', { kind: 'login' });
  const before = await refusals();
  const attempt = () => served.t.request('/api/auth/login', { method: 'POST', json: { username: victim.username, password: 'wrong-password' } });
  expect([(await attempt()).status, (await attempt()).status]).toEqual([401, 401]);
  expect(await refusals()).toBe(before);
  expect((await attempt()).status).toBe(429);
  expect(await refusals()).toBe(before + 1);
});

describe('bot answers', () => {
  test("a completed answer: its outcome, time to first token, duration, and the model's tokens", async () => {
    const chatId = await newChat(alice, 'bot');
    const before = await scrape();
    fake.reply({ kind: 'text', chunks: ['Hello', ' there'] });
    await send(alice, chatId, '/bot say hello');
    await served.t.app.services.bot.idle();
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string> = {}) => after(name, labels) - before(name, labels);
    expect(moved('gemini_coop_bot_answers_total', { outcome: 'completed' })).toBe(1);
    expect(moved('gemini_coop_bot_time_to_first_token_seconds_count')).toBe(1);
    expect(moved('gemini_coop_bot_answer_duration_seconds_count')).toBe(1);
    // The fake reports ⌈characters / 4⌉: "Hello there" is 3 tokens; the prompt is the room's history.
    expect(moved('gemini_coop_bot_tokens_total', { kind: 'candidates' })).toBe(3);
    expect(moved('gemini_coop_bot_tokens_total', { kind: 'prompt' })).toBeGreaterThan(0);
  });

  test('a failed answer counts as failed, with a duration and no first token', async () => {
    const chatId = await newChat(alice, 'bot failing');
    const before = await scrape();
    fake.reply({ kind: 'http-error', status: 500, message: 'Internal error' });
    await send(alice, chatId, '/bot fail');
    await served.t.app.services.bot.idle();
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string> = {}) => after(name, labels) - before(name, labels);
    expect(moved('gemini_coop_bot_answers_total', { outcome: 'failed' })).toBe(1);
    expect(moved('gemini_coop_bot_answer_duration_seconds_count')).toBe(1);
    expect(moved('gemini_coop_bot_time_to_first_token_seconds_count')).toBe(0);
    expect(moved('gemini_coop_bot_tokens_total', { kind: 'candidates' })).toBe(0);
  });
});

test('the pub/sub reports itself up, in its mode', async () => {
  const read = await scrape();
  const mode = served.t.config.redisUrl ? 'redis' : 'local';
  expect(read('gemini_coop_pubsub_up', { mode })).toBe(1);
});

describe('access', () => {
  let guarded: TestApp;
  let off: TestApp;
  beforeAll(async () => {
    [guarded, off] = await Promise.all([createTestApp({ METRICS_TOKEN: 'metrics-test-token' }), createTestApp({ METRICS: 'off' })]);
  });
  afterAll(async () => {
    await Promise.all([guarded.cleanup(), off.cleanup()]);
  });

  test('with METRICS_TOKEN, 401 without the bearer token or with another, 200 with it', async () => {
    const without = await guarded.request('/metrics');
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toBe('Bearer');
    expect((await guarded.request('/metrics', { token: 'metrics-test-token-not' })).status).toBe(401);
    const granted = await guarded.request('/metrics', { token: 'metrics-test-token' });
    expect(granted.status).toBe(200);
    expect(await granted.text()).toContain('gemini_coop_http_requests_total');
  });

  test('METRICS=off: 404, like any path the server does not serve', async () => {
    const response = await off.request('/metrics');
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: 'Not Found' });
  });

  test("each app counts its own: one app's messages do not move another's", async () => {
    const bob = await signUp(guarded);
    const chat = await guarded.request('/api/chats', { method: 'POST', token: bob.token, json: { name: 'elsewhere' } });
    const chatId = ((await chat.json()) as { id: number }).id;
    const before = await scrape();
    expect((await guarded.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: bob.token, json: { content: 'not yours' } })).status).toBe(200);
    expect((await scrape())('gemini_coop_messages_stored_total')).toBe(before('gemini_coop_messages_stored_total'));
  });
});
