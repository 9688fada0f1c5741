import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, type TestApp } from './support/app';

/** Every GraphQL operation and error code, over POST /graphql in-process. */

interface GraphQLResponse<T = any> {
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: { code?: string; [key: string]: unknown } }[];
}

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.cleanup());

async function gql<T = any>(query: string, variables: Record<string, unknown> = {}, token?: string) {
  const response = await t.request('/graphql', {
    method: 'POST',
    json: { query, variables },
    token,
    headers: { accept: 'application/json' },
  });
  expect(response.headers.get('content-type')).toContain('application/json');
  return { status: response.status, body: (await response.json()) as GraphQLResponse<T> };
}

/** Runs an operation that must succeed and returns its data. */
async function ok<T = any>(query: string, variables: Record<string, unknown> = {}, token?: string): Promise<T> {
  const { body } = await gql<T>(query, variables, token);
  expect(body.errors).toBeUndefined();
  return body.data as T;
}

/** Runs an operation that must fail with exactly one error, and returns that error. */
async function fails(query: string, variables: Record<string, unknown> = {}, token?: string) {
  const { body } = await gql(query, variables, token);
  expect(body.errors).toHaveLength(1);
  return body.errors![0]!;
}

const REGISTER = /* GraphQL */ `
  mutation Register($username: String!, $email: String!, $password: String!) {
    register(username: $username, email: $email, password: $password) {
      token
      user {
        id
        username
        email
        createdAt
      }
    }
  }
`;
const LOGIN = /* GraphQL */ `
  mutation Login($username: String!, $password: String!) {
    login(username: $username, password: $password) {
      token
      user {
        id
        username
      }
    }
  }
`;
const CREATE_CHAT = /* GraphQL */ `
  mutation CreateChat($name: String, $isGroup: Boolean) {
    createChat(name: $name, isGroup: $isGroup) {
      id
      name
      isGroup
      createdAt
      owner {
        username
      }
      participants {
        username
      }
    }
  }
`;
const INVITE = /* GraphQL */ `
  mutation Invite($chatId: ID!, $username: String!) {
    inviteUser(chatId: $chatId, username: $username) {
      id
      participants {
        username
      }
    }
  }
`;
const SEND = /* GraphQL */ `
  mutation Send($chatId: ID!, $content: String!) {
    sendMessage(chatId: $chatId, content: $content) {
      id
      chatId
      content
      isBot
      createdAt
      username
      user {
        username
      }
    }
  }
`;
const CHAT = /* GraphQL */ `
  query Chat($id: ID!) {
    chat(id: $id) {
      id
      name
      participants {
        username
      }
    }
  }
`;
const PAGE = /* GraphQL */ `
  query Page($id: ID!, $last: Int, $before: String) {
    chat(id: $id) {
      messages(last: $last, before: $before) {
        edges {
          cursor
          node {
            content
          }
        }
        pageInfo {
          hasPreviousPage
          hasNextPage
          startCursor
          endCursor
        }
      }
    }
  }
`;

const password = 'password123';
let seq = 0;
async function register(prefix = 'gql') {
  const username = `${prefix}${++seq}_${Math.random().toString(36).slice(2, 7)}`;
  const data = await ok(REGISTER, { username, email: `${username}@example.com`, password });
  return { ...data.register.user, token: data.register.token as string } as { id: string; username: string; email: string; token: string };
}

describe('auth', () => {
  test('register returns a token and the public user; the token authenticates `me`', async () => {
    const username = `Reg${++seq}`;
    const data = await ok(REGISTER, { username, email: `  ${username}@Example.COM `, password });
    expect(data.register.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(data.register.user).toMatchObject({ username, email: `${username.toLowerCase()}@example.com` });
    expect(Number.isNaN(Date.parse(data.register.user.createdAt))).toBe(false);
    const me = await ok('{ me { id username email } }', {}, data.register.token);
    expect(me.me).toEqual({ id: data.register.user.id, username, email: `${username.toLowerCase()}@example.com` });
  });

  test('login returns a working token', async () => {
    const user = await register();
    const data = await ok(LOGIN, { username: user.username, password });
    expect(data.login.user).toEqual({ id: user.id, username: user.username });
    expect((await ok('{ me { username } }', {}, data.login.token)).me.username).toBe(user.username);
  });

  test('login with a wrong password or unknown user is UNAUTHENTICATED', async () => {
    const user = await register();
    const wrong = await fails(LOGIN, { username: user.username, password: 'wrong-password' });
    expect(wrong.extensions?.code).toBe('UNAUTHENTICATED');
    expect(wrong.message).toBe('Incorrect username or password');
    const unknown = await fails(LOGIN, { username: 'nobody-here', password });
    expect(unknown.extensions?.code).toBe('UNAUTHENTICATED');
    expect(unknown.message).toBe(wrong.message);
  });

  test('a duplicate username or email is CONFLICT', async () => {
    const user = await register();
    const sameName = await fails(REGISTER, { username: user.username, email: `other${++seq}@example.com`, password });
    expect(sameName.extensions?.code).toBe('CONFLICT');
    expect(sameName.message).toBe('Username already registered');
    const sameEmail = await fails(REGISTER, { username: `other${++seq}`, email: user.email, password });
    expect(sameEmail.extensions?.code).toBe('CONFLICT');
    expect(sameEmail.message).toBe('Email already registered');
  });

  test('a bad email or short password is BAD_USER_INPUT, with the issues', async () => {
    const badEmail = await fails(REGISTER, { username: `bad${++seq}`, email: 'not-an-email', password });
    expect(badEmail.extensions?.code).toBe('BAD_USER_INPUT');
    expect(badEmail.extensions?.issues).toEqual([expect.objectContaining({ loc: ['body', 'email'] })]);
    const shortPassword = await fails(REGISTER, { username: `bad${++seq}`, email: `bad${seq}@example.com`, password: 'short' });
    expect(shortPassword.extensions?.code).toBe('BAD_USER_INPUT');
    expect(shortPassword.extensions?.issues).toEqual([expect.objectContaining({ loc: ['body', 'password'], type: 'string_too_short' })]);
  });

  test('no token or a bad token is UNAUTHENTICATED on every authenticated operation', async () => {
    const operations: [string, Record<string, unknown>][] = [
      ['{ me { id } }', {}],
      ['{ chats { id } }', {}],
      [CHAT, { id: '1' }],
      [CREATE_CHAT, { name: 'x' }],
      [INVITE, { chatId: '1', username: 'someone' }],
      [SEND, { chatId: '1', content: 'hi' }],
    ];
    for (const [query, variables] of operations) {
      for (const token of [undefined, 'not-a-jwt', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl']) {
        const error = await fails(query, variables, token);
        expect(error.extensions?.code).toBe('UNAUTHENTICATED');
      }
    }
  });

  test('the User type never exposes a password', async () => {
    const data = await ok(`{ __type(name: "User") { fields { name } } }`);
    const fields: string[] = data.__type.fields.map((field: { name: string }) => field.name);
    expect(fields).toContain('username');
    expect(fields.filter((name) => /pass|hash/i.test(name))).toEqual([]);
    // Nor does a response carry the hash by accident.
    const username = `hash${++seq}`;
    const { body } = await gql(REGISTER, { username, email: `${username}@example.com`, password });
    expect(JSON.stringify(body)).not.toContain('argon2');
  });
});

describe('chats and messages', () => {
  test('createChat makes the caller owner and first participant; chats and chat(id) read it back', async () => {
    const owner = await register();
    const other = await register();
    const group = (await ok(CREATE_CHAT, { name: 'Group', isGroup: true }, owner.token)).createChat;
    expect(group).toMatchObject({ name: 'Group', isGroup: true, owner: { username: owner.username }, participants: [{ username: owner.username }] });
    const direct = (await ok(CREATE_CHAT, {}, owner.token)).createChat;
    expect(direct).toMatchObject({ name: null, isGroup: false });
    await ok(CREATE_CHAT, { name: 'Not mine' }, other.token);

    const listed = await ok('{ chats { id name isGroup } }', {}, owner.token);
    expect(listed.chats).toEqual([
      { id: group.id, name: 'Group', isGroup: true },
      { id: direct.id, name: null, isGroup: false },
    ]);
    const read = await ok(CHAT, { id: group.id }, owner.token);
    expect(read.chat).toEqual({ id: group.id, name: 'Group', participants: [{ username: owner.username }] });
  });

  test('inviteUser adds a participant (once: again is CONFLICT), who then sees the chat', async () => {
    const owner = await register();
    const guest = await register();
    const chat = (await ok(CREATE_CHAT, { name: 'Invites' }, owner.token)).createChat;
    expect((await ok('{ chats { id } }', {}, guest.token)).chats).toEqual([]);

    const invited = await ok(INVITE, { chatId: chat.id, username: guest.username }, owner.token);
    expect(invited.inviteUser.participants).toEqual([{ username: owner.username }, { username: guest.username }]);
    const again = await gql(INVITE, { chatId: chat.id, username: guest.username }, owner.token);
    expect(again.body.errors?.[0]).toMatchObject({ message: 'User is already a participant', extensions: { code: 'CONFLICT' } });

    expect((await ok('{ chats { id } }', {}, guest.token)).chats).toEqual([{ id: chat.id }]);
    expect((await ok(CHAT, { id: chat.id }, guest.token)).chat.participants).toHaveLength(2);
  });

  test('sendMessage stores a message with its author', async () => {
    const owner = await register();
    const chat = (await ok(CREATE_CHAT, { name: 'Send' }, owner.token)).createChat;
    const sent = (await ok(SEND, { chatId: chat.id, content: 'hello there' }, owner.token)).sendMessage;
    expect(sent).toMatchObject({
      chatId: chat.id,
      content: 'hello there',
      isBot: false,
      username: owner.username,
      user: { username: owner.username },
    });
    const read = await ok(
      'query ($id: ID!) { chat(id: $id) { messages { edges { node { id content username user { id } } } } } }',
      { id: chat.id },
      owner.token,
    );
    expect(read.chat.messages.edges).toEqual([{ node: { id: sent.id, content: 'hello there', username: owner.username, user: { id: owner.id } } }]);
  });

  test('messages is a Relay connection: newest last, `last` + `before` page back', async () => {
    const owner = await register();
    const chat = (await ok(CREATE_CHAT, { name: 'Paging' }, owner.token)).createChat;
    for (let i = 0; i < 5; i++) await ok(SEND, { chatId: chat.id, content: `m${i}` }, owner.token);

    const all = (await ok(PAGE, { id: chat.id }, owner.token)).chat.messages;
    expect(all.edges.map((edge: any) => edge.node.content)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(all.pageInfo.hasPreviousPage).toBe(false);

    const newest = (await ok(PAGE, { id: chat.id, last: 2 }, owner.token)).chat.messages;
    expect(newest.edges.map((edge: any) => edge.node.content)).toEqual(['m3', 'm4']);
    expect(newest.pageInfo).toMatchObject({ hasPreviousPage: true, startCursor: newest.edges[0].cursor, endCursor: newest.edges[1].cursor });

    const older = (await ok(PAGE, { id: chat.id, last: 2, before: newest.pageInfo.startCursor }, owner.token)).chat.messages;
    expect(older.edges.map((edge: any) => edge.node.content)).toEqual(['m1', 'm2']);
    expect(older.pageInfo.hasPreviousPage).toBe(true);

    const oldest = (await ok(PAGE, { id: chat.id, last: 2, before: older.pageInfo.startCursor }, owner.token)).chat.messages;
    expect(oldest.edges.map((edge: any) => edge.node.content)).toEqual(['m0']);
    expect(oldest.pageInfo.hasPreviousPage).toBe(false);
  });
});

describe('error codes', () => {
  test('a chat the caller is not in is FORBIDDEN for chat, sendMessage and inviteUser', async () => {
    const owner = await register();
    const outsider = await register();
    const chat = (await ok(CREATE_CHAT, { name: 'Private' }, owner.token)).createChat;
    for (const [query, variables] of [
      [CHAT, { id: chat.id }],
      [SEND, { chatId: chat.id, content: 'let me in' }],
      [INVITE, { chatId: chat.id, username: outsider.username }],
    ] as const) {
      const error = await fails(query, variables, outsider.token);
      expect(error.extensions?.code).toBe('FORBIDDEN');
    }
    // Nothing was written: the outsider is still out and no message arrived.
    const read = await ok('query ($id: ID!) { chat(id: $id) { participants { username } messages { edges { cursor } } } }', { id: chat.id }, owner.token);
    expect(read.chat).toEqual({ participants: [{ username: owner.username }], messages: { edges: [] } });
  });

  test('a missing chat or unknown invitee is NOT_FOUND', async () => {
    const owner = await register();
    const chat = (await ok(CREATE_CHAT, { name: 'Found' }, owner.token)).createChat;
    for (const [query, variables] of [
      [CHAT, { id: '999999' }],
      [SEND, { chatId: '999999', content: 'hi' }],
      [INVITE, { chatId: '999999', username: owner.username }],
    ] as const) {
      const error = await fails(query, variables, owner.token);
      expect(error.extensions?.code).toBe('NOT_FOUND');
      expect(error.message).toBe('Chat not found');
    }
    const unknown = await fails(INVITE, { chatId: chat.id, username: 'no-such-user' }, owner.token);
    expect(unknown.extensions?.code).toBe('NOT_FOUND');
    expect(unknown.message).toBe('User not found');
  });

  test('a non-numeric id or empty content is BAD_USER_INPUT', async () => {
    const owner = await register();
    const chat = (await ok(CREATE_CHAT, { name: 'Input' }, owner.token)).createChat;
    for (const [query, variables] of [
      [CHAT, { id: 'abc' }],
      [CHAT, { id: '0' }],
      [SEND, { chatId: 'abc', content: 'hi' }],
      [INVITE, { chatId: 'abc', username: owner.username }],
      [SEND, { chatId: chat.id, content: '' }],
      [SEND, { chatId: chat.id, content: '   ' }],
    ] as const) {
      const error = await fails(query, variables, owner.token);
      expect(error.extensions?.code).toBe('BAD_USER_INPUT');
    }
    const empty = await fails(SEND, { chatId: chat.id, content: ' ' }, owner.token);
    expect(empty.message).toContain('Message content must not be empty');
  });

  test('an unexpected error is masked: "Unexpected error." and no secret in the response', async () => {
    const owner = await register();
    const secret = `db-password-${crypto.randomUUID()}`;
    const chats = t.app.services.chats;
    const original = chats.listFor;
    chats.listFor = () => {
      throw new Error(`connection failed: ${secret}`);
    };
    try {
      const response = await t.request('/graphql', { method: 'POST', json: { query: '{ chats { id } }' }, token: owner.token });
      const text = await response.text();
      expect(text).not.toContain(secret);
      expect(text).not.toContain('connection failed');
      const body = JSON.parse(text) as GraphQLResponse;
      expect(body.errors).toHaveLength(1);
      expect(body.errors![0]!.message).toBe('Unexpected error.');
      expect(body.errors![0]!.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    } finally {
      chats.listFor = original;
    }
    expect((await ok('{ chats { id } }', {}, owner.token)).chats).toEqual([]);
  });
});

describe('GraphiQL', () => {
  test('outside production, GET /graphql for a browser serves a self-contained GraphiQL (no CDN)', async () => {
    const response = await t.request('/graphql', { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    const html = await response.text();
    expect(html).toContain('<html');
    expect(html).toContain('GraphiQL');
    expect(html).not.toContain('unpkg.com');
    expect(html).not.toContain('jsdelivr');
    expect(html).not.toContain('cdn.');
    expect(html).not.toMatch(/<(script|link)\b[^>]*\b(src|href)=["']?https?:/i);
  });

  test('in production, GraphiQL is not served', async () => {
    const production = await createTestApp({ NODE_ENV: 'production' });
    try {
      const response = await production.request('/graphql', { headers: { accept: 'text/html' } });
      expect(response.headers.get('content-type') ?? '').not.toContain('text/html');
      expect(await response.text()).not.toContain('GraphiQL');
      // The endpoint itself still answers GraphQL.
      const query = await production.request('/graphql', { method: 'POST', json: { query: '{ __typename }' } });
      expect(await query.json()).toEqual({ data: { __typename: 'Query' } });
    } finally {
      await production.cleanup();
    }
  });
});
