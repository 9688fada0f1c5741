import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import type { TestUser } from './support/app';
import { signUp } from './support/app';
import type { CapturedLogs, LogLine } from './support/logs';
import { captureLogs } from './support/logs';
import { servedTestApp } from './support/sockets';

/**
 * The structured log: one line per HTTP request, per socket opened (at debug) and closed, per bot answer and
 * per error, each carrying its request id where there is one; and never a secret, whatever the
 * transport or outcome. Everything the app writes is captured through the logger's destination.
 */

const SECRET_KEY = `log-test-secret-${crypto.randomUUID()}`;
const GEMINI_KEY = `log-test-gemini-${crypto.randomUUID()}`;

let fake: FakeGemini;
// Every level: a secret in a debug line is a leak too.
const logs: CapturedLogs = captureLogs('trace');
beforeAll(async () => {
  fake = await startFakeGemini({ apiKey: GEMINI_KEY });
});
const served = servedTestApp(() => ({ SECRET_KEY, GEMINI_API_KEY: GEMINI_KEY, GEMINI_BASE_URL: fake.url }), { log: logs.log });
afterAll(() => fake.stop());

/** The lines written from now on, for a test to read after it acted. */
function linesFromHere(): () => LogLine[] {
  const start = logs.lines().length;
  return () => logs.lines().slice(start);
}

const requestLines = (lines: LogLine[]) => lines.filter((line) => line.msg === 'request');

describe('one line per HTTP request', () => {
  test('method, route template, status, duration and request id, which the response gives back as X-Request-Id', async () => {
    const alice = await signUp(served.t);
    const chat = (await (await served.t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'logged' } })).json()) as { id: number };
    const written = linesFromHere();
    const response = await served.t.request(`/api/chats/${chat.id}/messages?limit=5`, { token: alice.token });
    expect(response.status).toBe(200);
    const lines = requestLines(written());
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({ level: 'info', component: 'http', method: 'GET', route: '/api/chats/:chat_id/messages', status: 200 });
    expect(typeof line!.durationMs).toBe('number');
    expect(line!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.get('x-request-id')).toBe(line!.requestId!);
    // The template, never the path's ids or its query.
    expect(JSON.stringify(line)).not.toContain(`/api/chats/${chat.id}`);
    expect(JSON.stringify(line)).not.toContain('limit=5');
  });

  test('each request gets its own id; GraphQL, unknown paths and refusals are named too', async () => {
    const written = linesFromHere();
    const answers = [
      await served.t.request('/graphql', { method: 'POST', json: { query: '{ __typename }' } }),
      await served.t.request('/no/such/path/42'),
      await served.t.request('/api/auth/me'),
      await served.t.request('/ws'),
    ];
    const lines = requestLines(written());
    expect(lines.map(({ route, status }) => [route, status])).toEqual([
      ['/graphql', 200],
      ['unmatched', 404],
      ['/api/auth/me', 401],
      ['/ws', 426],
    ]);
    expect(lines.map((line) => line.requestId)).toEqual(answers.map((answer) => answer.headers.get('x-request-id') ?? undefined));
    expect(new Set(lines.map((line) => line.requestId)).size).toBe(4);
  });

  test('an error inside GraphQL is logged with the request id of the request it failed', async () => {
    const alice = await signUp(served.t);
    const chats = served.t.app.services.chats;
    const original = chats.listFor;
    chats.listFor = () => {
      throw new Error('the chat list broke');
    };
    try {
      const written = linesFromHere();
      const response = await served.t.request('/graphql', { method: 'POST', token: alice.token, json: { query: '{ chats { id } }' } });
      const error = written().find((line) => line.level === 'error');
      expect(error).toMatchObject({ component: 'graphql', err: { message: 'the chat list broke' } });
      expect(error!.requestId).toBe(response.headers.get('x-request-id')!);
    } finally {
      chats.listFor = original;
    }
  });
});

describe('one line per socket opened and closed', () => {
  test('/ws and graphql-ws: transport, user, and on closing how long it lived and its close code', async () => {
    const alice = await signUp(served.t);
    const written = linesFromHere();
    const closed = served.closes.count;
    const chat = served.kit.chat(alice.token);
    await chat.opened;
    await chat.sync();
    await chat.close(1000);
    await served.closes.closed(closed + 1);
    const graphql = served.kit.graphql(alice.token);
    await graphql.subscribe('subscription { viewerEvents { __typename } }', {}, { field: 'viewerEvents', ready: ['user:event', alice.id] }).ready;
    await graphql.client.dispose();
    await served.closes.closed(closed + 2);

    const lines = written();
    const socketLines = lines.filter((line) => line.component === 'sockets');
    expect(socketLines.map(({ msg, transport }) => [msg, transport])).toEqual([
      ['socket opened', 'ws'],
      ['socket closed', 'ws'],
      ['socket opened', 'graphql-ws'],
      ['socket closed', 'graphql-ws'],
    ]);
    const [wsOpened, wsClosed, graphqlOpened, graphqlClosed] = socketLines;
    expect(wsOpened!.userId).toBe(alice.id);
    // The opening is told at debug: at info, the upgrade's request line (101) says it, and an idle socket
    // costs less memory for a line fewer as it opens (see BENCHMARKS.md).
    expect([wsOpened!.level, graphqlOpened!.level, wsClosed!.level, graphqlClosed!.level]).toEqual(['debug', 'debug', 'info', 'info']);
    // The opening line carries the id of the request that upgraded the socket.
    const upgrades = requestLines(lines).filter((line) => line.status === 101);
    expect(upgrades.map((line) => line.route)).toEqual(['/ws', '/graphql']);
    expect([wsOpened!.requestId, graphqlOpened!.requestId]).toEqual(upgrades.map((line) => line.requestId));
    expect(wsClosed).toMatchObject({ userId: alice.id, code: 1000 });
    expect(typeof wsClosed!.durationMs).toBe('number');
    // graphql-ws learns its user at connection_init, after the socket opened.
    expect(graphqlOpened!.userId).toBeNull();
    expect(graphqlClosed).toMatchObject({ userId: alice.id, code: 1000 });
  });
});

describe('one line per bot answer', () => {
  async function ask(user: TestUser, content: string) {
    const chat = (await (await served.t.request('/api/chats', { method: 'POST', token: user.token, json: { name: 'bot log' } })).json()) as { id: number };
    await served.t.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: user.token, json: { content } });
    await served.t.app.services.bot.idle();
    return chat.id;
  }

  test("a completed answer: chat, model, time to first token, duration, outcome and the model's token counts", async () => {
    const alice = await signUp(served.t);
    fake.reply({ kind: 'text', chunks: ['Hello', ' there'] });
    const written = linesFromHere();
    const chatId = await ask(alice, '/bot say hello');
    const answers = written().filter((line) => line.msg === 'bot answer');
    expect(answers).toHaveLength(1);
    const [answer] = answers;
    expect(answer).toMatchObject({ level: 'info', component: 'bot', chatId, model: 'gemini-2.5-flash', outcome: 'completed', candidatesTokens: 3 });
    expect(answer!.ttftMs).toBeGreaterThanOrEqual(0);
    expect(answer!.durationMs).toBeGreaterThanOrEqual(answer!.ttftMs as number);
    expect(answer!.promptTokens).toBeGreaterThan(0);
    expect(answer!.totalTokens).toBe((answer!.promptTokens as number) + 3);
    // The answer outlives the request that asked: it carries no request id.
    expect(answer!.requestId).toBeUndefined();
  });

  test('a failed answer is a warning with the reason its members were told, and no first token', async () => {
    const alice = await signUp(served.t);
    fake.reply({ kind: 'http-error', status: 429, message: 'Resource has been exhausted' });
    const written = linesFromHere();
    await ask(alice, '/bot fail please');
    const [answer] = written().filter((line) => line.msg === 'bot answer');
    expect(answer).toMatchObject({ level: 'warn', outcome: 'failed', ttftMs: null, error: expect.stringContaining('HTTP 429') });
  });
});

test('the logger itself replaces fields named like secrets and hides passwords in the URLs an error quotes', () => {
  const own = captureLogs();
  const error = Object.assign(new Error('cannot reach postgresql://coop:hunter2@db/coop'), { token: 'hunter3' });
  own.log.error({ password: 'hunter4', headers: { authorization: 'Bearer hunter5' }, config: { apiKey: 'hunter6' }, err: error }, 'redaction');
  const [line] = own.lines();
  expect(line).toMatchObject({ password: '[redacted]', headers: { authorization: '[redacted]' }, config: { apiKey: '[redacted]' } });
  expect(line!.err).toMatchObject({ message: 'cannot reach postgresql://coop:***@db/coop', token: '[redacted]' });
  expect(own.text()).not.toMatch(/hunter\d/);
});

test('no password, token, SECRET_KEY or GEMINI_API_KEY in anything logged, whatever the transport or outcome', async () => {
  const name = `secretive_${crypto.randomUUID().slice(0, 8)}`;
  const password = `pw-${crypto.randomUUID()}`;
  const written = linesFromHere();

  const registered = await served.t.request('/api/auth/register', { method: 'POST', json: { username: name, email: `${name}@example.com`, password } });
  expect(registered.status).toBe(200);
  const login = await served.t.request('/api/auth/login', { method: 'POST', json: { username: name, password } });
  const { access_token: token } = (await login.json()) as { access_token: string };
  const form = await served.t.request('/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: name, password }).toString(),
  });
  expect(form.status).toBe(200);
  const graphqlLogin = await served.t.request('/graphql', {
    method: 'POST',
    json: { query: 'mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }', variables: { u: name, p: password } },
  });
  expect(graphqlLogin.status).toBe(200);
  // Failing requests: a wrong password, a mangled token, a 500.
  expect((await served.t.request('/api/auth/login', { method: 'POST', json: { username: name, password: `${password}-wrong` } })).status).toBe(401);
  expect((await served.t.request('/api/auth/me', { token: `${token}x` })).status).toBe(401);
  const chat = (await (await served.t.request('/api/chats', { method: 'POST', token, json: { name: 'secrets' } })).json()) as { id: number };
  const chats = served.t.app.services.chats;
  const original = chats.listFor;
  chats.listFor = () => {
    throw new Error('the chat list broke');
  };
  try {
    expect((await served.t.request('/api/chats', { token })).status).toBe(500);
  } finally {
    chats.listFor = original;
  }

  // The sockets: /ws with ?token=, graphql-ws with the token in connectionParams, and a bot answer.
  const closed = served.closes.count;
  const socket = served.kit.chat(token);
  await socket.opened;
  await socket.join(chat.id);
  socket.send({ type: 'message', chat_id: chat.id, content: '/bot keep a secret' });
  await socket.next((frame) => frame.type === 'bot_stream' && frame.is_complete === true, 'the answer');
  const graphql = served.kit.graphql(token);
  const added = graphql.subscribe(
    'subscription ($id: ID!) { messageAdded(chatId: $id) { id } }',
    { id: chat.id },
    { field: 'messageAdded', ready: ['chat:message', chat.id] },
  );
  await added.ready;
  await served.t.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token, json: { content: 'over graphql-ws' } });
  await added.next(() => true, 'the message');
  await socket.close();
  await graphql.client.dispose();
  await served.closes.closed(closed + 2);
  await served.t.app.services.bot.idle();

  const lines = written();
  // Every kind of line was written, so their absence of secrets means something.
  for (const msg of ['request', 'socket opened', 'socket closed', 'bot answer', 'unhandled error']) expect(lines.some((line) => line.msg === msg)).toBe(true);
  const text = logs.text();
  for (const secret of [password, token, SECRET_KEY, GEMINI_KEY]) expect(text).not.toContain(secret);
  expect(text).not.toContain('?token=');
});
