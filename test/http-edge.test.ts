import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { ConfigError, loadConfig } from '../src/config';
import { MAX_BODY_BYTES } from '../src/http-edge';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';

/**
 * What every HTTP response passes through (src/http-edge.ts): security headers, one CORS policy
 * for REST and GraphQL, the request body cap; and that no error response leaks internals.
 */

let dev: TestApp; // CORS_ORIGINS unset outside production: any origin
let prod: TestApp; // production, CORS_ORIGINS unset: no cross-origin access
let listed: TestApp; // CORS_ORIGINS=https://a.example
let devUser: TestUser;
let prodUser: TestUser;

beforeAll(async () => {
  [dev, prod, listed] = await Promise.all([
    createTestApp(),
    createTestApp({ NODE_ENV: 'production' }),
    createTestApp({ NODE_ENV: 'production', CORS_ORIGINS: 'https://a.example' }),
  ]);
  [devUser, prodUser] = await Promise.all([signUp(dev), signUp(prod)]);
});
afterAll(() => Promise.all([dev.cleanup(), prod.cleanup(), listed.cleanup()]));

const API_CSP = "default-src 'none'; frame-ancestors 'none'";

function expectSecurityHeaders(response: Response, { json = true } = {}) {
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.get('x-frame-options')).toBe('DENY');
  expect(response.headers.get('referrer-policy')).toBe('no-referrer');
  expect(response.headers.get('cross-origin-opener-policy')).toBe('same-origin');
  if (json) expect(response.headers.get('content-security-policy')).toBe(API_CSP);
}

const varyNames = (response: Response) =>
  (response.headers.get('vary') ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);

const preflightRequest = (app: TestApp, path: string, origin: string) =>
  app.request(path, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });

/** A register body padded with an ignored field to exactly `bytes` bytes. */
function paddedRegister(username: string, bytes: number): string {
  const base = JSON.stringify({ username, email: `${username}@example.com`, password: 'password123', pad: '' });
  const body = JSON.stringify({ username, email: `${username}@example.com`, password: 'password123', pad: 'x'.repeat(bytes - base.length) });
  expect(Buffer.byteLength(body)).toBe(bytes);
  return body;
}

const fresh = (prefix: string) => `${prefix}_${Math.random().toString(36).slice(2, 10)}`;

/** Whether `username` can still be registered, i.e. nothing was stored under it. */
async function isFree(app: TestApp, username: string): Promise<boolean> {
  const response = await app.request('/api/auth/register', {
    method: 'POST',
    json: { username, email: `${username}@example.com`, password: 'password123' },
  });
  return response.status === 200;
}

describe('security headers', () => {
  const cases: [string, (app: TestApp, token: string) => Promise<Response>][] = [
    ['REST JSON (GET /health)', (app) => app.request('/health')],
    ['REST JSON with auth (GET /api/auth/me)', (app, token) => app.request('/api/auth/me', { token })],
    ['GraphQL JSON', (app, token) => app.request('/graphql', { method: 'POST', json: { query: '{ me { id } }' }, token })],
    ['GraphQL error', (app) => app.request('/graphql', { method: 'POST', json: { query: '{ me { id }' } })],
    ['404', (app) => app.request('/no/such/path')],
    ['401', (app) => app.request('/api/auth/me')],
    ['405', (app) => app.request('/api/chats', { method: 'DELETE' })],
    ['422', (app) => app.request('/api/auth/login', { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } })],
    ['413', (app) => app.request('/api/auth/login', { method: 'POST', body: '{}', headers: { 'content-length': String(MAX_BODY_BYTES + 1) } })],
    ['426 (/ws without an upgrade)', (app) => app.request('/ws')],
  ];

  for (const [label, send] of cases) {
    test(`${label}: nosniff, DENY, no-referrer and the JSON CSP, in development and in production`, async () => {
      for (const [app, user] of [
        [dev, devUser],
        [prod, prodUser],
      ] as const) {
        const response = await send(app, user.token);
        expect(response.headers.get('content-type')).toContain('json');
        expectSecurityHeaders(response);
      }
    });
  }

  test('500: the masked internal error has them too', async () => {
    const chats = prod.app.services.chats;
    const original = chats.listFor;
    chats.listFor = () => {
      throw new Error('boom');
    };
    try {
      const response = await prod.request('/api/chats', { token: prodUser.token });
      expect(response.status).toBe(500);
      expectSecurityHeaders(response);
    } finally {
      chats.listFor = original;
    }
  });

  test('a CORS preflight (204, no body) has them too', async () => {
    const response = await preflightRequest(dev, '/api/chats', 'https://x.example');
    expect(response.status).toBe(204);
    expectSecurityHeaders(response);
  });

  test("GraphiQL's page (development only) keeps nosniff and DENY; its scripts are spared the JSON CSP", async () => {
    const response = await dev.request('/graphql', { headers: { accept: 'text/html' } });
    expect(response.headers.get('content-type')).toStartWith('text/html');
    expectSecurityHeaders(response, { json: false });
  });
});

describe('CORS outside production, CORS_ORIGINS unset: any origin', () => {
  test('a request with an Origin gets Access-Control-Allow-Origin: *, without credentials', async () => {
    for (const response of [
      await dev.request('/health', { headers: { origin: 'https://anything.example' } }),
      await dev.request('/graphql', { method: 'POST', json: { query: '{ __typename }' }, headers: { origin: 'http://localhost:5173' } }),
    ]) {
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  test('a request without an Origin gets no CORS headers', async () => {
    const response = await dev.request('/health');
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });

  for (const path of ['/api/chats', '/graphql']) {
    test(`a preflight to ${path} is 204 with the allowed methods and headers`, async () => {
      const response = await preflightRequest(dev, path, 'https://anything.example');
      expect(response.status).toBe(204);
      expect(await response.text()).toBe('');
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
      const methods = response.headers.get('access-control-allow-methods') ?? '';
      for (const method of ['GET', 'POST', 'PATCH', 'DELETE']) expect(methods).toContain(method);
      const headers = (response.headers.get('access-control-allow-headers') ?? '').toLowerCase();
      for (const header of ['authorization', 'content-type']) expect(headers).toContain(header);
      expect(response.headers.get('access-control-max-age')).toBe('600');
    });
  }
});

describe('CORS in production, CORS_ORIGINS unset: no cross-origin access', () => {
  test('a foreign origin gets no Access-Control-Allow-Origin, on REST and GraphQL', async () => {
    const origin = 'https://evil.example';
    for (const response of [
      await prod.request('/health', { headers: { origin } }),
      await prod.request('/api/auth/me', { token: prodUser.token, headers: { origin } }),
      await prod.request('/graphql', { method: 'POST', json: { query: '{ me { id } }' }, token: prodUser.token, headers: { origin } }),
    ]) {
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  test('the preflight is answered (204) but allows nothing', async () => {
    const response = await preflightRequest(prod, '/graphql', 'https://evil.example');
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('access-control-allow-methods')).toBeNull();
    expect(response.headers.get('access-control-allow-headers')).toBeNull();
  });
});

describe('CORS_ORIGINS=https://a.example: exactly that origin', () => {
  test('the listed origin is echoed back, with Vary: Origin, on REST and GraphQL', async () => {
    const origin = 'https://a.example';
    for (const response of [
      await listed.request('/health', { headers: { origin } }),
      await listed.request('/graphql', { method: 'POST', json: { query: '{ __typename }' }, headers: { origin } }),
    ]) {
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
      expect(varyNames(response)).toContain('origin');
    }
  });

  test('other origins, near misses included, get no Access-Control-Allow-Origin but still Vary: Origin', async () => {
    for (const origin of ['https://b.example', 'http://a.example', 'https://a.example:8443', 'https://a.example.evil.com', 'https://evil-a.example', 'null']) {
      const response = await listed.request('/health', { headers: { origin } });
      expect(response.headers.get('access-control-allow-origin')).toBeNull();
      // The answer depends on Origin either way; a shared cache must not serve one origin's copy to another.
      expect(varyNames(response)).toContain('origin');
    }
  });

  test('the preflight allows the listed origin (Vary: Origin once) and not another', async () => {
    const allowed = await preflightRequest(listed, '/graphql', 'https://a.example');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://a.example');
    expect(allowed.headers.get('access-control-allow-methods')).toContain('POST');
    expect(varyNames(allowed).filter((name) => name === 'origin')).toHaveLength(1);

    const refused = await preflightRequest(listed, '/graphql', 'https://b.example');
    expect(refused.status).toBe(204);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(refused.headers.get('access-control-allow-methods')).toBeNull();
  });
});

describe('CORS_ORIGINS parsing', () => {
  const env = (extra: Record<string, string>) => ({ SECRET_KEY: 'k'.repeat(40), DATABASE_URL: 'file:/nonexistent/unused.db', ...extra });

  test('a comma-separated list, spaces allowed; * for any; unset is * outside production and none in production', () => {
    expect(loadConfig(env({ CORS_ORIGINS: 'https://a.example, http://localhost:5173' })).cors.origins).toEqual(['https://a.example', 'http://localhost:5173']);
    expect(loadConfig(env({ CORS_ORIGINS: '*', NODE_ENV: 'production' })).cors.origins).toBe('*');
    expect(loadConfig(env({})).cors.origins).toBe('*');
    expect(loadConfig(env({ NODE_ENV: 'production' })).cors.origins).toEqual([]);
  });

  for (const value of ['https://a.example/', 'https://a.example/app', 'a.example', 'ftp://a.example', '*.example.com', 'https://a.example https://b.example']) {
    test(`CORS_ORIGINS=${value} is a ConfigError that shows the accepted form`, () => {
      let error: unknown;
      try {
        loadConfig(env({ CORS_ORIGINS: value }));
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as ConfigError).message;
      expect(message).toContain('CORS_ORIGINS');
      expect(message).toContain('https://chat.example.com');
      expect(message).toContain('no path');
    });
  }
});

describe(`request body cap (${MAX_BODY_BYTES} bytes)`, () => {
  const TOO_LARGE = { detail: 'Request body too large' };

  test('a declared Content-Length over the cap is 413 on REST, and nothing is stored', async () => {
    const username = fresh('big');
    const body = paddedRegister(username, MAX_BODY_BYTES + 1);
    const response = await dev.request('/api/auth/register', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'content-length': String(MAX_BODY_BYTES + 1) },
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual(TOO_LARGE);
    expect(await isFree(dev, username)).toBe(true);
  });

  test('a declared Content-Length over the cap is 413 on /graphql, and nothing is stored', async () => {
    const username = fresh('gql');
    const query = `mutation { register(username: "${username}", email: "${username}@example.com", password: "password123") { token } }`;
    const base = JSON.stringify({ query, variables: { pad: '' } });
    const body = JSON.stringify({ query, variables: { pad: 'x'.repeat(MAX_BODY_BYTES + 1 - base.length) } });
    expect(Buffer.byteLength(body)).toBe(MAX_BODY_BYTES + 1);
    const response = await dev.request('/graphql', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'content-length': String(MAX_BODY_BYTES + 1) },
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual(TOO_LARGE);
    expect(await isFree(dev, username)).toBe(true);
  });

  test('the declared length is enough: the body is never read', async () => {
    let pulled = false;
    for (const path of ['/api/auth/register', '/graphql']) {
      // highWaterMark 0: nothing is pulled until someone reads.
      const body = new ReadableStream(
        {
          pull() {
            pulled = true;
            throw new Error('the body was read');
          },
        },
        { highWaterMark: 0 },
      );
      const response = await dev.request(path, { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-length': '5000000' } });
      expect(response.status).toBe(413);
    }
    expect(pulled).toBe(false);
  });

  test('a body of exactly the cap is accepted', async () => {
    const username = fresh('edge');
    const body = paddedRegister(username, MAX_BODY_BYTES);
    const response = await dev.request('/api/auth/register', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'content-length': String(MAX_BODY_BYTES) },
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { username: string }).username).toBe(username);
  });

  test('an undeclared body over the cap is 413 on REST register too (readBody), and nothing is stored', async () => {
    const username = fresh('undeclared');
    const request = new Request('http://test/api/auth/register', {
      method: 'POST',
      body: paddedRegister(username, MAX_BODY_BYTES + 1),
      headers: { 'content-type': 'application/json' },
    });
    expect(request.headers.get('content-length')).toBeNull();
    const response = (await dev.app.fetch(request))!;
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual(TOO_LARGE);
    expect(await isFree(dev, username)).toBe(true);
  });

  test('served as src/server.ts serves it (maxRequestBodySize), a chunked body over the cap is refused on REST and /graphql', async () => {
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      maxRequestBodySize: MAX_BODY_BYTES,
      fetch: (request, server) => dev.app.fetch(request, server),
      websocket: dev.app.websocket,
    });
    // readBody meets Bun's "Request body exceeded maxRequestBodySize" and logs it as an unhandled
    // error (src/rest/http.ts); the client has its 413 from Bun either way.
    try {
      for (const path of ['/api/auth/register', '/graphql']) {
        const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent > MAX_BODY_BYTES) return controller.close();
            sent += chunk.length;
            controller.enqueue(chunk);
          },
        });
        const response = await fetch(`http://127.0.0.1:${server.port}${path}`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
          duplex: 'half',
        } as RequestInit);
        // Bun itself refuses it (an empty 413, before the app); the app's JSON 413 covers declared lengths.
        expect(response.status).toBe(413);
        await response.arrayBuffer();
      }
    } finally {
      void server.stop(true);
    }
  });
});

describe('error responses leak nothing', () => {
  const alg = (header: object, payload: object) =>
    `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;

  function badRequests(token: string): [string, string, RequestInit & { json?: unknown; token?: string }][] {
    const json = { 'content-type': 'application/json' };
    return [
      ['malformed JSON login', '/api/auth/login', { method: 'POST', body: '{"username":', headers: json }],
      ['wrong types at register', '/api/auth/register', { method: 'POST', json: { username: ['a'], email: { $ne: null }, password: 12345678 } }],
      ['null body at register', '/api/auth/register', { method: 'POST', json: null }],
      ['an overlong login', '/api/auth/login', { method: 'POST', json: { username: 'u'.repeat(5000), password: 'p'.repeat(5000) } }],
      ['a wrong password', '/api/auth/login', { method: 'POST', json: { username: 'nobody-here', password: 'password123' } }],
      ['a garbled form', '/api/auth/login', { method: 'POST', body: '%%%&&&=', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
      ['a garbage token', '/api/auth/me', { token: 'a.b.c' }],
      ['an alg:none token', '/api/auth/me', { token: alg({ alg: 'none', typ: 'JWT' }, { sub: '1', exp: 9_999_999_999 }) }],
      ['a non-numeric chat id', '/api/chats/abc', { token }],
      ['an enormous chat id', '/api/chats/99999999999999999999999999', { token }],
      ['bad history parameters', '/api/chats/1/messages?limit=-1&before=x', { token }],
      ['a wrong method', '/health', { method: 'PUT' }],
      ['malformed JSON to /graphql', '/graphql', { method: 'POST', body: '{"query": "{ me { id }', headers: json }],
      ['a non-string query', '/graphql', { method: 'POST', json: { query: 123 } }],
      ['a GraphQL syntax error', '/graphql', { method: 'POST', json: { query: '{ me { id }' } }],
      [
        'wrongly typed variables',
        '/graphql',
        { method: 'POST', json: { query: 'query Q($id: ID!) { chat(id: $id) { id } }', variables: { id: { nested: true } } }, token },
      ],
      ['a bad chat id in GraphQL', '/graphql', { method: 'POST', json: { query: '{ chat(id: "abc") { id } }' }, token }],
      ['a mutation over GET', '/graphql?query=mutation%7BcreateChat%7Bid%7D%7D', {}],
      ['an unknown operationName', '/graphql', { method: 'POST', json: { query: '{ me { id } }', operationName: 'Nope' }, token }],
      ['a wrong GraphQL password', '/graphql', { method: 'POST', json: { query: 'mutation { login(username: "nobody-here", password: "x") { token } }' } }],
      ['text/plain to /graphql', '/graphql', { method: 'POST', body: '{ me { id } }', headers: { 'content-type': 'text/plain' } }],
    ];
  }

  function expectNoLeak(text: string, secretKey: string) {
    expect(text).not.toMatch(/^\s*at\s/m); // a stack line
    expect(text).not.toMatch(/\bat \S+ \(?\S+:\d+:\d+\)?/);
    expect(text).not.toContain('node_modules');
    expect(text).not.toContain('/src/');
    expect(text).not.toContain(secretKey);
    expect(text.toLowerCase()).not.toContain('argon2');
    // yoga's "POST body sent invalid JSON." carries extensions.originalError {name, message} of the
    // JSON parser (about the client's own bytes); no stack may come with it.
    expect(text).not.toContain('"stack"');
  }

  for (const [name, app, user] of [
    ['development', () => dev, () => devUser],
    ['production', () => prod, () => prodUser],
  ] as const) {
    test(`bad requests in ${name} get 4xx answers with no stack, path, secret key or hash`, async () => {
      for (const [label, path, init] of badRequests(user().token)) {
        const response = await app().request(path, init);
        const text = await response.text();
        if (response.status >= 500 || response.status < 200) throw new Error(`${label}: ${response.status} ${text}`);
        expectNoLeak(text, app().config.secretKey);
      }
    });
  }

  // KNOWN BUG, to fix in src/app.ts (toGraphQLError): graphql-js and Pothos report these client
  // mistakes as GraphQLErrors wrapped in a located GraphQLError; the mask passes only errors with
  // no originalError, so they come back as "Unexpected error." INTERNAL_SERVER_ERROR, and each is
  // logged with a stack (any client can fill the error log). Turn `test.failing` into `test` once fixed.
  test('GraphQL client mistakes (bad variables, bad cursor, first with before) are not internal errors', async () => {
    const chat = await prod.request('/api/chats', { method: 'POST', json: { name: 'mistakes' }, token: prodUser.token });
    const chatId = ((await chat.json()) as { id: number }).id;
    const mistakes: [string, Record<string, unknown>, RegExp][] = [
      ['query Q($id: ID!) { chat(id: $id) { id } }', { id: { nested: true } }, /Variable "\$id" got invalid value/],
      [`query Q($n: Int) { chat(id: ${chatId}) { messages(first: $n) { edges { cursor } } } }`, { n: 'abc' }, /Variable "\$n" got invalid value/],
      [`{ chat(id: ${chatId}) { messages(after: "garbage") { edges { cursor } } } }`, {}, /Invalid cursor/],
      [`{ chat(id: ${chatId}) { messages(first: 1, before: "x") { edges { cursor } } } }`, {}, /"before" and "first"/],
    ];
    for (const [query, variables, message] of mistakes) {
      const response = await prod.request('/graphql', { method: 'POST', json: { query, variables }, token: prodUser.token });
      const body = (await response.json()) as { errors: { message: string; extensions?: { code?: string } }[] };
      expect(body.errors[0]!.extensions?.code).not.toBe('INTERNAL_SERVER_ERROR');
      expect(body.errors[0]!.message).toMatch(message);
    }
  });

  test('an internal error carrying secrets is masked on REST and GraphQL', async () => {
    const secretKey = prod.config.secretKey;
    const chats = prod.app.services.chats;
    const original = chats.listFor;
    chats.listFor = () => {
      throw new Error(`argon2 failed with ${secretKey}\n    at listFor (/srv/app/node_modules/x/index.js:1:1)`);
    };
    try {
      const rest = await prod.request('/api/chats', { token: prodUser.token });
      expect(rest.status).toBe(500);
      const restText = await rest.text();
      expect(JSON.parse(restText)).toEqual({ detail: 'Internal server error' });
      expectNoLeak(restText, secretKey);

      const graphql = await prod.request('/graphql', { method: 'POST', json: { query: '{ chats { id } }' }, token: prodUser.token });
      const graphqlText = await graphql.text();
      expect(JSON.parse(graphqlText).errors[0].message).toBe('Unexpected error.');
      expectNoLeak(graphqlText, secretKey);
    } finally {
      chats.listFor = original;
    }
  });

  test('no response ever carries the password hash', async () => {
    const username = fresh('hash');
    const registered = await prod.request('/api/auth/register', {
      method: 'POST',
      json: { username, email: `${username}@example.com`, password: 'password123' },
    });
    const login = await prod.request('/api/auth/login', { method: 'POST', json: { username, password: 'password123' } });
    const { access_token } = (await login.clone().json()) as { access_token: string };
    const responses = [
      registered,
      login,
      await prod.request('/api/auth/me', { token: access_token }),
      await prod.request('/graphql', { method: 'POST', json: { query: '{ me { id username email createdAt } }' }, token: access_token }),
    ];
    for (const response of responses) {
      expect(response.status).toBe(200);
      const text = (await response.text()).toLowerCase();
      expect(text).not.toContain('argon2');
      expect(text).not.toContain('hashed');
    }
  });
});
