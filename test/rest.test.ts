import { afterAll, beforeAll, describe, expect, setSystemTime, test } from 'bun:test';
import { SignJWT, UnsecuredJWT } from 'jose';
import { AppError, RateLimitedError } from '../src/services/errors';
import { LoginThrottle } from '../src/services/login-throttle';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { captureLogs } from './support/logs';

/**
 * The REST contract of the original FastAPI service, exercised in-process through `app.fetch`.
 */

let t: TestApp;
const errors = captureLogs('error');
beforeAll(async () => {
  t = await createTestApp({}, { log: errors.log });
});
afterAll(() => t.cleanup());

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const USER_KEYS = ['avatar_url', 'created_at', 'display_name', 'email', 'id', 'username'];
const PARTICIPANT_KEYS = ['avatar_url', 'created_at', 'display_name', 'email', 'id', 'last_seen_at', 'online', 'username'];
const CHAT_KEYS = ['created_at', 'id', 'is_group', 'name', 'owner_id'];
const MESSAGE_KEYS = ['attachments', 'chat_id', 'content', 'created_at', 'edited_at', 'id', 'is_bot', 'reactions', 'user_id', 'username'];

let nameCounter = 0;
const freshName = (prefix = 'u') => `${prefix}${++nameCounter}_${Math.random().toString(36).slice(2, 8)}`;

const keysOf = (value: object) => Object.keys(value).sort();

/** A timestamp the original would have sent: ISO 8601 in UTC, and recent. */
function expectRecentUtc(timestamp: unknown) {
  expect(typeof timestamp).toBe('string');
  expect(timestamp as string).toMatch(ISO_UTC);
  const age = Date.now() - Date.parse(timestamp as string);
  expect(age).toBeGreaterThan(-60_000);
  expect(age).toBeLessThan(10 * 60_000);
}

interface Issue {
  type: string;
  loc: (string | number)[];
  msg: string;
}

/** Asserts a FastAPI-style 422 and returns its issues. */
async function expect422(response: Response): Promise<Issue[]> {
  expect(response.status).toBe(422);
  const body = (await response.json()) as { detail: Issue[] };
  expect(Object.keys(body)).toEqual(['detail']);
  expect(Array.isArray(body.detail)).toBe(true);
  expect(body.detail.length).toBeGreaterThan(0);
  for (const issue of body.detail) {
    expect(typeof issue.type).toBe('string');
    expect(typeof issue.msg).toBe('string');
    expect(issue.msg.length).toBeGreaterThan(0);
    expect(Array.isArray(issue.loc)).toBe(true);
  }
  return body.detail;
}

async function expectDetail(response: Response, status: number, detail: string) {
  expect(response.status).toBe(status);
  expect(await response.json()).toEqual({ detail });
}

const register = (body: unknown) => t.request('/api/auth/register', { method: 'POST', json: body });
const login = (body: unknown) => t.request('/api/auth/login', { method: 'POST', json: body });
const loginForm = (fields: Record<string, string>) =>
  t.request('/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

async function createChat(user: TestUser, body: unknown = { name: 'Room', is_group: true }) {
  const response = await t.request('/api/chats', { method: 'POST', token: user.token, json: body });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: number; name: string | null; owner_id: number; is_group: boolean; created_at: string };
}

/** A chat as the chat list shows it before anyone wrote in it. */
const listed = (chat: object) => ({ ...chat, unread_count: 0, last_message: null, last_message_time: null });

const invite = (user: TestUser, chatId: number | string, username: string) =>
  t.request(`/api/chats/${chatId}/invite`, { method: 'POST', token: user.token, json: { username } });

async function participantNames(user: TestUser, chatId: number) {
  const response = await t.request(`/api/chats/${chatId}/participants`, { token: user.token });
  expect(response.status).toBe(200);
  return ((await response.json()) as { username: string }[]).map((participant) => participant.username);
}

async function postMessage(user: TestUser, chatId: number, content: string) {
  const response = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: user.token, json: { content } });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: number; content: string };
}

describe('GET /health', () => {
  test('answers {"status":"healthy"} without authentication, with each dependency\'s state', async () => {
    const response = await t.request('/health');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect(await response.json()).toEqual({ status: 'healthy', database: 'ok', pubsub: process.env.TEST_REDIS_URL ? 'ready' : 'local' });
  });
});

describe('POST /api/auth/register', () => {
  test('returns exactly {id, username, email, created_at} and never the password or its hash', async () => {
    const username = freshName('reg');
    const response = await register({ username, email: `${username}@example.com`, password: 'password123' });
    expect(response.status).toBe(200);
    const text = await response.text();
    const user = JSON.parse(text);
    expect(keysOf(user)).toEqual(USER_KEYS);
    expect(user).toMatchObject({ username, email: `${username}@example.com` });
    expect(Number.isInteger(user.id)).toBe(true);
    expectRecentUtc(user.created_at);
    expect(text).not.toContain('password');
    expect(text).not.toContain('hash');
    expect(text).not.toContain('$argon2');
  });

  test('stores emails in lowercase', async () => {
    const username = freshName('case');
    const response = await register({ username, email: `${username.toUpperCase()}@Example.COM`, password: 'password123' });
    expect(response.status).toBe(200);
    expect((await response.json()).email).toBe(`${username}@example.com`);
  });

  test('a taken username is 400 "Username already registered"', async () => {
    const username = freshName('dup');
    expect((await register({ username, email: `${username}@example.com`, password: 'password123' })).status).toBe(200);
    await expectDetail(await register({ username, email: `other_${username}@example.com`, password: 'password123' }), 400, 'Username already registered');
  });

  test('a taken email is 400 "Email already registered", whatever its case', async () => {
    const username = freshName('mail');
    expect((await register({ username, email: `${username}@example.com`, password: 'password123' })).status).toBe(200);
    await expectDetail(
      await register({ username: freshName('mail'), email: `${username}@example.com`, password: 'password123' }),
      400,
      'Email already registered',
    );
    await expectDetail(
      await register({ username: freshName('mail'), email: `${username.toUpperCase()}@EXAMPLE.com`, password: 'password123' }),
      400,
      'Email already registered',
    );
  });

  test('when both username and email are taken, the username message wins', async () => {
    const username = freshName('both');
    expect((await register({ username, email: `${username}@example.com`, password: 'password123' })).status).toBe(200);
    await expectDetail(await register({ username, email: `${username}@example.com`, password: 'password123' }), 400, 'Username already registered');
  });

  describe('invalid bodies are 422 with a FastAPI detail list and store nothing', () => {
    const cases: [label: string, body: (name: string) => unknown, field: string][] = [
      ['a malformed email', (name) => ({ username: name, email: 'not-an-email', password: 'password123' }), 'email'],
      ['a password shorter than 8 characters', (name) => ({ username: name, email: `${name}@example.com`, password: 'short7!' }), 'password'],
      ['a missing password', (name) => ({ username: name, email: `${name}@example.com` }), 'password'],
      ['a missing email', (name) => ({ username: name, password: 'password123' }), 'email'],
      ['a numeric password', (name) => ({ username: name, email: `${name}@example.com`, password: 12345678 }), 'password'],
      ['a username with spaces', (name) => ({ username: `${name} x`, email: `${name}@example.com`, password: 'password123' }), 'username'],
      ['a username with symbols', (name) => ({ username: `${name}!`, email: `${name}@example.com`, password: 'password123' }), 'username'],
    ];
    for (const [label, body, field] of cases) {
      test(label, async () => {
        const name = freshName('bad');
        const issues = await expect422(await register(body(name)));
        expect(issues.map((issue) => issue.loc)).toContainEqual(['body', field]);
        // Nothing was stored: the same username and email register fine afterwards.
        const valid = await register({ username: name, email: `${name}@example.com`, password: 'password123' });
        expect(valid.status).toBe(200);
      });
    }

    test('a missing field says "Field required" with type "missing"', async () => {
      const issues = await expect422(await register({ username: freshName('miss'), password: 'password123' }));
      expect(issues).toEqual([{ type: 'missing', loc: ['body', 'email'], msg: 'Field required' }]);
    });

    test('a value of the wrong type is reported as a wrong type, not as missing', async () => {
      const issues = await expect422(await register({ username: 42, email: 'x@example.com', password: 'password123' }));
      expect(issues).toHaveLength(1);
      expect(issues[0]!.loc).toEqual(['body', 'username']);
      expect(issues[0]!.type).not.toBe('missing');
      expect(issues[0]!.msg).not.toBe('Field required');
    });

    test('malformed JSON', async () => {
      const response = await t.request('/api/auth/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"username": "broken",',
      });
      const issues = await expect422(response);
      expect(issues[0]!.type).toBe('json_invalid');
      expect(issues[0]!.loc[0]).toBe('body');
      expect((await login({ username: 'broken', password: 'password123' })).status).toBe(401);
    });

    test('a JSON body that is not an object', async () => {
      const issues = await expect422(await register(['jane', 'jane@example.com', 'password123']));
      expect(issues[0]!.loc[0]).toBe('body');
    });
  });
});

describe('POST /api/auth/login', () => {
  let user: TestUser;
  beforeAll(async () => {
    user = await signUp(t);
  });

  test('JSON credentials give {access_token, token_type: "bearer"} and the token works', async () => {
    const response = await login({ username: user.username, password: user.password });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(keysOf(body)).toEqual(['access_token', 'token_type']);
    expect(body.token_type).toBe('bearer');
    expect(body.access_token.split('.')).toHaveLength(3);
    const me = await t.request('/api/auth/me', { token: body.access_token });
    expect(me.status).toBe(200);
    expect((await me.json()).id).toBe(user.id);
  });

  test('an OAuth2 form (application/x-www-form-urlencoded) works too', async () => {
    const response = await loginForm({ grant_type: 'password', username: user.username, password: user.password });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.token_type).toBe('bearer');
    const me = await t.request('/api/auth/me', { token: body.access_token });
    expect((await me.json()).username).toBe(user.username);
  });

  test('a wrong password is 401 "Incorrect username or password" with WWW-Authenticate: Bearer', async () => {
    const response = await login({ username: user.username, password: 'wrong-password' });
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    await expectDetail(response, 401, 'Incorrect username or password');
  });

  test('a wrong password in a form is refused the same way', async () => {
    const response = await loginForm({ username: user.username, password: 'wrong-password' });
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    await expectDetail(response, 401, 'Incorrect username or password');
  });

  test('an unknown user gets the very same answer as a wrong password', async () => {
    const response = await login({ username: freshName('ghost'), password: 'password123' });
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    await expectDetail(response, 401, 'Incorrect username or password');
  });

  test('a body without a password is 422', async () => {
    const issues = await expect422(await login({ username: user.username }));
    expect(issues).toContainEqual({ type: 'missing', loc: ['body', 'password'], msg: 'Field required' });
  });
});

describe('GET /api/auth/me', () => {
  let user: TestUser;
  let key: Uint8Array;
  beforeAll(async () => {
    user = await signUp(t);
    key = new TextEncoder().encode(t.config.secretKey);
  });

  const me = (token?: string, headers?: Record<string, string>) => t.request('/api/auth/me', { token, headers });
  const now = () => Math.floor(Date.now() / 1000);

  async function expectInvalid(response: Response) {
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    await expectDetail(response, 401, 'Invalid authentication credentials');
  }

  test('returns the caller as {id, username, email, created_at}, with their linked sign-in providers', async () => {
    const response = await me(user.token);
    expect(response.status).toBe(200);
    const text = await response.text();
    const body = JSON.parse(text);
    expect(keysOf(body)).toEqual([...USER_KEYS, 'identities'].sort());
    expect(body.identities).toEqual([]);
    expect(body).toMatchObject({ id: user.id, username: user.username, email: `${user.username}@example.com` });
    expectRecentUtc(body.created_at);
    expect(text).not.toContain('password');
  });

  test('a hand-built HS256 token with the server key is accepted (so the refusals below are meaningful)', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(String(user.id)).setIssuedAt().setExpirationTime('10m').sign(key);
    expect((await me(token)).status).toBe(200);
  });

  test('no token is 401 "Not authenticated"', async () => {
    const response = await me();
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    await expectDetail(response, 401, 'Not authenticated');
  });

  test('a non-Bearer Authorization header is 401 "Not authenticated"', async () => {
    const response = await me(undefined, { authorization: `Basic ${btoa(`${user.username}:${user.password}`)}` });
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    await expectDetail(response, 401, 'Not authenticated');
  });

  test('a malformed token is refused', async () => {
    await expectInvalid(await me('not.a.jwt'));
    await expectInvalid(await me('garbage'));
  });

  test('a token signed with another key is refused', async () => {
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(String(user.id))
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode('some-other-secret-key-that-is-long-enough-000'));
    await expectInvalid(await me(forged));
  });

  test('an expired token is refused', async () => {
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(String(user.id))
      .setIssuedAt(now() - 7200)
      .setExpirationTime(now() - 3600)
      .sign(key);
    await expectInvalid(await me(expired));
  });

  test('an unsigned token (alg: none) is refused', async () => {
    const unsigned = new UnsecuredJWT({}).setSubject(String(user.id)).setIssuedAt().setExpirationTime('10m').encode();
    await expectInvalid(await me(unsigned));
  });

  test('a token signed with another algorithm (HS512, same secret) is refused', async () => {
    const hs512 = await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject(String(user.id)).setIssuedAt().setExpirationTime('10m').sign(key);
    await expectInvalid(await me(hs512));
  });

  test('a token without exp is refused', async () => {
    const eternal = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(String(user.id)).setIssuedAt().sign(key);
    await expectInvalid(await me(eternal));
  });

  test('a valid token naming a user that does not exist is refused', async () => {
    const orphan = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('987654').setIssuedAt().setExpirationTime('10m').sign(key);
    await expectInvalid(await me(orphan));
  });
});

describe('chats', () => {
  let owner: TestUser;
  let stranger: TestUser;
  beforeAll(async () => {
    owner = await signUp(t);
    stranger = await signUp(t);
  });

  describe('POST /api/chats', () => {
    test('returns exactly {id, name, owner_id, is_group, created_at}', async () => {
      const chat = await createChat(owner, { name: 'Planning', is_group: true });
      expect(keysOf(chat)).toEqual(CHAT_KEYS);
      expect(chat).toMatchObject({ name: 'Planning', is_group: true, owner_id: owner.id });
      expect(Number.isInteger(chat.id)).toBe(true);
      expectRecentUtc(chat.created_at);
    });

    test('without fields the chat has name null and is_group false', async () => {
      const chat = await createChat(owner, {});
      expect(chat.name).toBeNull();
      expect(chat.is_group).toBe(false);
      expect(chat.owner_id).toBe(owner.id);
    });

    test('the creator is the first participant', async () => {
      const chat = await createChat(owner);
      expect(await participantNames(owner, chat.id)).toEqual([owner.username]);
    });

    test('invalid fields are 422', async () => {
      const wrongType = await t.request('/api/chats', { method: 'POST', token: owner.token, json: { is_group: 'yes' } });
      expect((await expect422(wrongType)).map((issue) => issue.loc)).toContainEqual(['body', 'is_group']);
      const tooLong = await t.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'x'.repeat(101) } });
      expect((await expect422(tooLong)).map((issue) => issue.loc)).toContainEqual(['body', 'name']);
    });

    test('requires authentication', async () => {
      const response = await t.request('/api/chats', { method: 'POST', json: {} });
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      await expectDetail(response, 401, 'Not authenticated');
    });
  });

  describe('GET /api/chats', () => {
    test("lists only the caller's chats", async () => {
      const alice = await signUp(t);
      const bob = await signUp(t);
      const first = await createChat(alice, { name: 'a1' });
      const second = await createChat(alice, { name: 'a2' });
      const bobs = await createChat(bob, { name: 'b1' });
      const aliceList = await (await t.request('/api/chats', { token: alice.token })).json();
      // Latest activity first: with no messages yet, the newest chat.
      expect(aliceList).toEqual([listed(second), listed(first)]);
      const bobList = await (await t.request('/api/chats', { token: bob.token })).json();
      expect(bobList).toEqual([listed(bobs)]);
    });

    test('a new user has no chats', async () => {
      const lonely = await signUp(t);
      const response = await t.request('/api/chats', { token: lonely.token });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual([]);
    });

    test('requires authentication', async () => {
      await expectDetail(await t.request('/api/chats'), 401, 'Not authenticated');
    });
  });

  describe('GET /api/chats/{id}', () => {
    test('a participant reads the chat', async () => {
      const chat = await createChat(owner, { name: 'Readable' });
      const response = await t.request(`/api/chats/${chat.id}`, { token: owner.token });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual(chat);
    });

    test('a missing chat is 404 "Chat not found"', async () => {
      await expectDetail(await t.request('/api/chats/999999', { token: owner.token }), 404, 'Chat not found');
    });

    test('a non-participant is 403 "Not authorized"', async () => {
      const chat = await createChat(owner);
      await expectDetail(await t.request(`/api/chats/${chat.id}`, { token: stranger.token }), 403, 'Not authorized');
    });
  });

  describe('POST /api/chats/{id}/invite', () => {
    test('the owner invites a user, who then sees and reads the chat', async () => {
      const jane = await signUp(t, freshName('jane'));
      const chat = await createChat(owner, { name: 'Invites' });
      const before = await (await t.request('/api/chats', { token: jane.token })).json();
      expect(before).toEqual([]);

      const response = await invite(owner, chat.id, jane.username);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ message: `User ${jane.username} invited to chat` });

      expect(await (await t.request('/api/chats', { token: jane.token })).json()).toEqual([listed(chat)]);
      expect((await t.request(`/api/chats/${chat.id}`, { token: jane.token })).status).toBe(200);
    });

    test('any participant, not only the owner, may invite', async () => {
      const jane = await signUp(t);
      const kim = await signUp(t);
      const chat = await createChat(owner);
      expect((await invite(owner, chat.id, jane.username)).status).toBe(200);
      const response = await invite(jane, chat.id, kim.username);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ message: `User ${kim.username} invited to chat` });
      expect(await participantNames(kim, chat.id)).toEqual([owner.username, jane.username, kim.username]);
    });

    test('inviting a member again is 400 "User is already a participant" and changes nothing', async () => {
      const jane = await signUp(t);
      const chat = await createChat(owner);
      expect((await invite(owner, chat.id, jane.username)).status).toBe(200);
      await expectDetail(await invite(owner, chat.id, jane.username), 400, 'User is already a participant');
      await expectDetail(await invite(owner, chat.id, owner.username), 400, 'User is already a participant');
      expect(await participantNames(owner, chat.id)).toEqual([owner.username, jane.username]);
    });

    test('a missing chat is 404 "Chat not found"', async () => {
      await expectDetail(await invite(owner, 999999, stranger.username), 404, 'Chat not found');
    });

    test('a non-participant is 403 "Not authorized" and invites nobody', async () => {
      const chat = await createChat(owner);
      await expectDetail(await invite(stranger, chat.id, stranger.username), 403, 'Not authorized');
      expect(await participantNames(owner, chat.id)).toEqual([owner.username]);
    });

    test('an unknown invitee is 404 "User not found"', async () => {
      const chat = await createChat(owner);
      await expectDetail(await invite(owner, chat.id, freshName('nobody')), 404, 'User not found');
    });

    test('a body without username is 422', async () => {
      const chat = await createChat(owner);
      const response = await t.request(`/api/chats/${chat.id}/invite`, { method: 'POST', token: owner.token, json: {} });
      expect(await expect422(response)).toContainEqual({ type: 'missing', loc: ['body', 'username'], msg: 'Field required' });
    });
  });

  describe('GET /api/chats/{id}/participants', () => {
    test('lists members as {id, username, email, created_at, online, last_seen_at} without secrets', async () => {
      const jane = await signUp(t);
      const chat = await createChat(owner);
      await invite(owner, chat.id, jane.username);
      const response = await t.request(`/api/chats/${chat.id}/participants`, { token: jane.token });
      expect(response.status).toBe(200);
      const text = await response.text();
      const participants = JSON.parse(text) as Record<string, unknown>[];
      expect(participants).toHaveLength(2);
      for (const participant of participants) {
        expect(keysOf(participant)).toEqual(PARTICIPANT_KEYS);
        // Nobody here has a socket open, and nobody ever had one.
        expect(participant).toMatchObject({ online: false, last_seen_at: null });
        expectRecentUtc(participant.created_at);
      }
      expect(participants.map((participant) => participant.id)).toEqual([owner.id, jane.id]);
      expect(participants[1]).toMatchObject({ username: jane.username, email: `${jane.username}@example.com` });
      expect(text).not.toContain('password');
    });

    test('404 for a missing chat, 403 for a non-participant', async () => {
      const chat = await createChat(owner);
      await expectDetail(await t.request('/api/chats/999999/participants', { token: owner.token }), 404, 'Chat not found');
      await expectDetail(await t.request(`/api/chats/${chat.id}/participants`, { token: stranger.token }), 403, 'Not authorized');
    });
  });
});

describe('messages', () => {
  let author: TestUser;
  let friend: TestUser;
  let stranger: TestUser;
  let chatId: number;
  let sent: { id: number; content: string }[];

  beforeAll(async () => {
    author = await signUp(t);
    friend = await signUp(t);
    stranger = await signUp(t);
    chatId = (await createChat(author)).id;
    await invite(author, chatId, friend.username);
    sent = [];
    for (let index = 1; index <= 7; index++) sent.push(await postMessage(index % 2 ? author : friend, chatId, `message ${index}`));
  });

  const history = (query = '', user: TestUser = author) => t.request(`/api/chats/${chatId}/messages${query}`, { token: user.token });
  const contents = async (response: Response) => {
    expect(response.status).toBe(200);
    return ((await response.json()) as { content: string }[]).map((message) => message.content);
  };

  test('POST returns exactly {id, chat_id, user_id, username, content, is_bot, created_at, edited_at, reactions, attachments}', async () => {
    const other = (await createChat(author)).id;
    const response = await t.request(`/api/chats/${other}/messages`, { method: 'POST', token: author.token, json: { content: 'hello there' } });
    expect(response.status).toBe(200);
    const message = await response.json();
    expect(keysOf(message)).toEqual(MESSAGE_KEYS);
    expect(message).toMatchObject({ chat_id: other, user_id: author.id, username: author.username, content: 'hello there', is_bot: false, reactions: [] });
    expect(Number.isInteger(message.id)).toBe(true);
    expectRecentUtc(message.created_at);
  });

  test('history items have exactly the message keys and the author of each', async () => {
    const response = await history();
    expect(response.status).toBe(200);
    const messages = (await response.json()) as Record<string, unknown>[];
    expect(messages).toHaveLength(7);
    for (const message of messages) {
      expect(keysOf(message)).toEqual(MESSAGE_KEYS);
      expect(message.chat_id).toBe(chatId);
      expect(message.is_bot).toBe(false);
      expectRecentUtc(message.created_at);
    }
    expect(messages[0]).toMatchObject({ user_id: author.id, username: author.username, content: 'message 1' });
    expect(messages[1]).toMatchObject({ user_id: friend.id, username: friend.username, content: 'message 2' });
  });

  test('without parameters all messages come back oldest first', async () => {
    expect(await contents(await history())).toEqual(['message 1', 'message 2', 'message 3', 'message 4', 'message 5', 'message 6', 'message 7']);
  });

  test('limit keeps the newest messages, still in chronological order', async () => {
    expect(await contents(await history('?limit=3'))).toEqual(['message 5', 'message 6', 'message 7']);
    expect(await contents(await history('?limit=1'))).toEqual(['message 7']);
  });

  test('before pages backwards through the history', async () => {
    const page2 = await contents(await history(`?limit=3&before=${sent[4]!.id}`));
    expect(page2).toEqual(['message 2', 'message 3', 'message 4']);
    const page3 = await contents(await history(`?limit=3&before=${sent[1]!.id}`));
    expect(page3).toEqual(['message 1']);
    expect(await contents(await history(`?limit=3&before=${sent[0]!.id}`))).toEqual([]);
    expect(await contents(await history(`?before=${sent[3]!.id}`))).toEqual(['message 1', 'message 2', 'message 3']);
  });

  test('a chat is never mixed with another chat', async () => {
    const other = (await createChat(author)).id;
    await postMessage(author, other, 'elsewhere');
    const response = await t.request(`/api/chats/${other}/messages`, { token: author.token });
    expect(await contents(response)).toEqual(['elsewhere']);
    expect(await contents(await history('?limit=1'))).toEqual(['message 7']);
  });

  test('limit out of range or not a number is 422 located in the query', async () => {
    for (const limit of ['0', '201', '-1', 'abc', '2.5']) {
      const issues = await expect422(await history(`?limit=${limit}`));
      expect(issues.map((issue) => issue.loc)).toContainEqual(['query', 'limit']);
    }
    expect((await history('?limit=200')).status).toBe(200);
  });

  test('a non-numeric before is 422', async () => {
    const issues = await expect422(await history('?before=latest'));
    expect(issues.map((issue) => issue.loc)).toContainEqual(['query', 'before']);
    expect(issues[0]!.type).not.toBe('missing');
  });

  test('empty or whitespace-only content is 422 and stores nothing', async () => {
    const target = (await createChat(author)).id;
    for (const content of ['', '   ', '\n\t ']) {
      const response = await t.request(`/api/chats/${target}/messages`, { method: 'POST', token: author.token, json: { content } });
      expect((await expect422(response)).map((issue) => issue.loc)).toContainEqual(['body', 'content']);
    }
    const missing = await t.request(`/api/chats/${target}/messages`, { method: 'POST', token: author.token, json: {} });
    expect(await expect422(missing)).toContainEqual({ type: 'missing', loc: ['body', 'content'], msg: 'Field required' });
    expect(await contents(await t.request(`/api/chats/${target}/messages`, { token: author.token }))).toEqual([]);
  });

  test('content over 10000 characters is 422; exactly 10000 is accepted', async () => {
    const target = (await createChat(author)).id;
    const tooLong = await t.request(`/api/chats/${target}/messages`, { method: 'POST', token: author.token, json: { content: 'x'.repeat(10_001) } });
    expect((await expect422(tooLong)).map((issue) => issue.loc)).toContainEqual(['body', 'content']);
    const longest = await postMessage(author, target, 'y'.repeat(10_000));
    expect(longest.content).toHaveLength(10_000);
    expect(await contents(await t.request(`/api/chats/${target}/messages`, { token: author.token }))).toEqual(['y'.repeat(10_000)]);
  });

  test('non-members get 403 "Not authorized" for reading and for posting, and post nothing', async () => {
    await expectDetail(await history('', stranger), 403, 'Not authorized');
    const post = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: stranger.token, json: { content: 'let me in' } });
    await expectDetail(post, 403, 'Not authorized');
    expect(await contents(await history('?limit=1'))).toEqual(['message 7']);
  });

  test('a missing chat is 404 "Chat not found"', async () => {
    await expectDetail(await t.request('/api/chats/999999/messages', { token: author.token }), 404, 'Chat not found');
    const post = await t.request('/api/chats/999999/messages', { method: 'POST', token: author.token, json: { content: 'hi' } });
    await expectDetail(post, 404, 'Chat not found');
  });

  test('requires authentication', async () => {
    await expectDetail(await t.request(`/api/chats/${chatId}/messages`), 401, 'Not authenticated');
  });
});

describe('path ids', () => {
  let user: TestUser;
  beforeAll(async () => {
    user = await signUp(t);
  });

  test('a non-numeric chat id is 422 with a detail list located in the path', async () => {
    const attempts: [string, RequestInit & { json?: unknown }][] = [
      ['/api/chats/abc', {}],
      ['/api/chats/abc/participants', {}],
      ['/api/chats/abc/messages', {}],
      ['/api/chats/abc/messages', { method: 'POST', json: { content: 'hi' } }],
      ['/api/chats/abc/invite', { method: 'POST', json: { username: user.username } }],
      ['/api/chats/1.5', {}],
      ['/api/chats/0', {}],
    ];
    for (const [path, init] of attempts) {
      const issues = await expect422(await t.request(path, { ...init, token: user.token }));
      expect(issues[0]!.loc[0]).toBe('path');
      expect(issues[0]!.type).not.toBe('missing');
    }
  });

  test('a malformed percent-escape in the path is a 422, not a crash', async () => {
    const issues = await expect422(await t.request('/api/chats/%E0%A4%A', { token: user.token }));
    expect(issues[0]!.loc[0]).toBe('path');
  });
});

describe('errors', () => {
  test('an unknown path is 404 {"detail":"Not Found"}', async () => {
    for (const path of ['/nope', '/api/nope', '/api/chats/1/nope', '/api/auth']) {
      await expectDetail(await t.request(path), 404, 'Not Found');
    }
  });

  test('a known path with the wrong method is 405 naming the allowed methods', async () => {
    const cases: [path: string, method: string, allowed: string][] = [
      ['/api/auth/login', 'GET', 'POST'],
      ['/health', 'POST', 'GET'],
      ['/api/chats/1', 'PUT', 'GET, DELETE'],
      ['/api/chats/1/invite', 'GET', 'POST'],
    ];
    for (const [path, method, allowed] of cases) {
      const response = await t.request(path, { method });
      expect(response.headers.get('allow')).toContain(allowed);
      await expectDetail(response, 405, 'Method Not Allowed');
    }
  });

  test('HEAD is refused as FastAPI refuses it (no route takes it): 405 on a known path, 404 elsewhere', async () => {
    const known = await t.request('/api/chats/1', { method: 'HEAD' });
    expect(known.status).toBe(405);
    expect(known.headers.get('allow')).toBe('GET, DELETE');
    expect((await t.request('/no/such/path', { method: 'HEAD' })).status).toBe(404);
  });

  test('an unexpected failure is 500 {"detail":"Internal server error"}, leaks nothing, and is logged under its X-Request-Id', async () => {
    const user = await signUp(t);
    const chats = t.app.services.chats;
    const original = chats.listFor;
    chats.listFor = () => {
      throw new Error('SQLITE_CORRUPT: secret table users_private at /var/db/prod.sqlite');
    };
    try {
      const response = await t.request('/api/chats', { token: user.token });
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({ detail: 'Internal server error' });
      expect(text).not.toContain('SQLITE_CORRUPT');
      expect(text).not.toContain('prod.sqlite');
      expect(text).not.toContain('stack');
      const requestId = response.headers.get('x-request-id');
      const logged = errors.lines().find((line) => line.requestId === requestId);
      expect(logged).toMatchObject({ level: 'error', msg: 'unhandled error', err: { message: expect.stringContaining('SQLITE_CORRUPT') } });
    } finally {
      chats.listFor = original;
    }
    expect((await t.request('/api/chats', { token: user.token })).status).toBe(200);
  });

  test('an unexpected async failure is masked the same way', async () => {
    const user = await signUp(t);
    const chats = t.app.services.chats;
    const original = chats.listFor;
    chats.listFor = (async () => {
      throw new TypeError('Cannot read properties of undefined (reading "hashedPassword")');
    }) as unknown as typeof chats.listFor;
    try {
      const response = await t.request('/api/chats', { token: user.token });
      expect(response.status).toBe(500);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({ detail: 'Internal server error' });
      expect(text).not.toContain('hashedPassword');
    } finally {
      chats.listFor = original;
    }
  });
});

describe('login throttling', () => {
  let throttled: TestApp;
  beforeAll(async () => {
    throttled = await createTestApp({ LOGIN_RATE_LIMIT: '3' });
  });
  afterAll(async () => {
    setSystemTime();
    await throttled.cleanup();
  });

  const attempt = (username: string, password: string) => throttled.request('/api/auth/login', { method: 'POST', json: { username, password } });

  test('after 3 failures the 4th attempt is 429 with Retry-After, even with the right password', async () => {
    const victim = await signUp(throttled);
    for (let index = 0; index < 3; index++) {
      await expectDetail(await attempt(victim.username, 'wrong-password'), 401, 'Incorrect username or password');
    }
    const blocked = await attempt(victim.username, victim.password);
    expect(blocked.status).toBe(429);
    const retryAfter = Number(blocked.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = await blocked.json();
    expect(keysOf(body)).toEqual(['detail']);
    expect(typeof body.detail).toBe('string');
    expect(body.detail.length).toBeGreaterThan(0);
  });

  test('another user still logs in while one is throttled', async () => {
    const victim = await signUp(throttled);
    const bystander = await signUp(throttled);
    for (let index = 0; index < 3; index++) expect((await attempt(victim.username, 'wrong-password')).status).toBe(401);
    expect((await attempt(victim.username, 'wrong-password')).status).toBe(429);
    const response = await attempt(bystander.username, bystander.password);
    expect(response.status).toBe(200);
    expect((await response.json()).token_type).toBe('bearer');
  });

  test('failures for an unknown username are throttled too', async () => {
    const ghost = freshName('ghost');
    for (let index = 0; index < 3; index++) expect((await attempt(ghost, 'password123')).status).toBe(401);
    expect((await attempt(ghost, 'password123')).status).toBe(429);
  });

  test('successful logins are not counted as failures', async () => {
    const user = await signUp(throttled);
    for (let index = 0; index < 2; index++) expect((await attempt(user.username, 'wrong-password')).status).toBe(401);
    for (let index = 0; index < 4; index++) expect((await attempt(user.username, user.password)).status).toBe(200);
  });

  test('the lockout ends with the one-minute window', async () => {
    const user = await signUp(throttled);
    const start = Date.now();
    setSystemTime(new Date(start));
    for (let index = 0; index < 3; index++) expect((await attempt(user.username, 'wrong-password')).status).toBe(401);
    setSystemTime(new Date(start + 59_000));
    expect((await attempt(user.username, user.password)).status).toBe(429);
    setSystemTime(new Date(start + 61_000));
    expect((await attempt(user.username, user.password)).status).toBe(200);
    setSystemTime();
  });
});

describe('LoginThrottle', () => {
  const T0 = 1_700_000_000_000;

  function throttleAt(max = 3) {
    const clock = { now: T0 };
    return { clock, throttle: new LoginThrottle(max, { now: () => clock.now }) };
  }

  function rateLimit(run: () => void): RateLimitedError | undefined {
    try {
      run();
      return undefined;
    } catch (error) {
      if (error instanceof RateLimitedError) return error;
      throw error;
    }
  }

  // A failed login keeps the attempt it reserved; a successful one gives it back.
  const fail = (throttle: LoginThrottle, username: string, address: string | null = null) => rateLimit(() => throttle.reserve(username, address));
  const succeed = (throttle: LoginThrottle, username: string, address: string | null = null) => rateLimit(() => throttle.reserve(username, address).refund());

  test('allows attempts until the limit of failures, then refuses with a 429 and the seconds left', () => {
    const { throttle } = throttleAt(3);
    for (let index = 0; index < 3; index++) expect(fail(throttle, 'jane')).toBeUndefined();
    const error = fail(throttle, 'jane');
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error).toBeInstanceOf(AppError);
    expect(error!.status).toBe(429);
    expect(error!.retryAfterSeconds).toBe(60);
  });

  test('the seconds left count down with the clock', () => {
    const { clock, throttle } = throttleAt(3);
    for (let index = 0; index < 3; index++) fail(throttle, 'jane');
    clock.now = T0 + 45_000;
    expect(succeed(throttle, 'jane')?.retryAfterSeconds).toBe(15);
    clock.now = T0 + 59_500;
    expect(succeed(throttle, 'jane')?.retryAfterSeconds).toBe(1);
  });

  test('the window ends 60 seconds after the first failure', () => {
    const { clock, throttle } = throttleAt(3);
    for (let index = 0; index < 3; index++) fail(throttle, 'jane');
    clock.now = T0 + 59_999;
    expect(succeed(throttle, 'jane')).toBeInstanceOf(RateLimitedError);
    clock.now = T0 + 60_000;
    expect(succeed(throttle, 'jane')).toBeUndefined();
  });

  test('failures during a lockout are refused and do not extend it', () => {
    const { clock, throttle } = throttleAt(3);
    for (let index = 0; index < 3; index++) fail(throttle, 'jane');
    for (const offset of [10_000, 30_000, 59_000]) {
      clock.now = T0 + offset;
      expect(fail(throttle, 'jane')).toBeInstanceOf(RateLimitedError);
    }
    clock.now = T0 + 60_000;
    expect(succeed(throttle, 'jane')).toBeUndefined();
  });

  test('a new window starts counting from zero', () => {
    const { clock, throttle } = throttleAt(3);
    for (let index = 0; index < 3; index++) fail(throttle, 'jane');
    clock.now = T0 + 60_000;
    fail(throttle, 'jane');
    fail(throttle, 'jane');
    expect(succeed(throttle, 'jane')).toBeUndefined();
    fail(throttle, 'jane');
    expect(succeed(throttle, 'jane')?.retryAfterSeconds).toBe(60);
  });

  test('successful logins (attempts given back) are never counted', () => {
    const { throttle } = throttleAt(3);
    fail(throttle, 'jane');
    fail(throttle, 'jane');
    for (let index = 0; index < 100; index++) expect(succeed(throttle, 'jane')).toBeUndefined();
  });

  test('an attempt counts from the moment it is reserved: more at once than the limit are refused', () => {
    const { throttle } = throttleAt(3);
    const inFlight = [0, 1, 2].map(() => throttle.reserve('jane', '10.0.0.1'));
    expect(fail(throttle, 'jane', '10.0.0.2')).toBeInstanceOf(RateLimitedError);
    expect(fail(throttle, 'bob', '10.0.0.1')).toBeInstanceOf(RateLimitedError);
    inFlight[0]!.refund();
    inFlight[0]!.refund(); // given back once only
    expect(succeed(throttle, 'jane', '10.0.0.1')).toBeUndefined();
    expect(fail(throttle, 'jane', '10.0.0.1')).toBeUndefined();
    expect(fail(throttle, 'jane', '10.0.0.1')).toBeInstanceOf(RateLimitedError);
  });

  test('usernames are counted apart, ignoring case and surrounding spaces', () => {
    const { throttle } = throttleAt(2);
    fail(throttle, 'Jane');
    fail(throttle, ' jane ');
    expect(succeed(throttle, 'jane')).toBeInstanceOf(RateLimitedError);
    expect(succeed(throttle, 'bob')).toBeUndefined();
  });

  test('a client address is limited across usernames; other addresses are not', () => {
    const { throttle } = throttleAt(3);
    fail(throttle, 'a', '10.0.0.1');
    fail(throttle, 'b', '10.0.0.1');
    fail(throttle, 'c', '10.0.0.1');
    expect(succeed(throttle, 'd', '10.0.0.1')).toBeInstanceOf(RateLimitedError);
    expect(succeed(throttle, 'd', '10.0.0.2')).toBeUndefined();
    expect(succeed(throttle, 'd', null)).toBeUndefined();
  });

  test('a limit of 0 turns throttling off', () => {
    const { throttle } = throttleAt(0);
    for (let index = 0; index < 50; index++) expect(fail(throttle, 'jane', '10.0.0.1')).toBeUndefined();
    expect(throttle.size).toBe(0);
  });
});

describe('GET /health when a dependency is down', () => {
  test('answers 503 "unhealthy" naming the database', async () => {
    const t = await createTestApp();
    try {
      // A disconnected Prisma client reconnects on demand; make the probe fail as a dead database would.
      t.app.services.db.$queryRaw = (() => Promise.reject(new Error('database unreachable'))) as never;
      const response = await t.request('/health');
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ status: 'unhealthy', database: 'unreachable' });
    } finally {
      await t.cleanup();
    }
  });
});
