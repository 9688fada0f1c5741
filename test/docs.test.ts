import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { z } from 'zod';
import packageJson from '../package.json' with { type: 'json' };
import { GRAPHIQL_EXAMPLE } from '../src/graphiql-example';
import { MAX_BODY_BYTES } from '../src/http-edge';
import { createRestApi } from '../src/rest/api';
import { restRoutes } from '../src/rest/routes';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';

/**
 * What tells people and programs how to use the server: the OpenAPI document of the REST API and
 * the Swagger UI over it, the front door at `/`, and GraphiQL's opening example.
 */

let dev: TestApp;
let prod: TestApp;
beforeAll(async () => {
  [dev, prod] = await Promise.all([createTestApp(), createTestApp({ NODE_ENV: 'production' })]);
});
afterAll(() => Promise.all([dev.cleanup(), prod.cleanup()]));

interface Operation {
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; required?: boolean; schema: Record<string, unknown> }[];
  requestBody?: { content: Record<string, { schema: { properties?: Record<string, Record<string, unknown>>; required?: string[] } }> };
  responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema: unknown }> }>;
}
interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { type: string; scheme: string }> };
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

async function fetchDocument(app: TestApp): Promise<OpenApiDocument> {
  const response = await app.request('/openapi.json');
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('application/json');
  return (await response.json()) as OpenApiDocument;
}

/** Every operation of the document as "METHOD /path/{param}". */
const operationsOf = (document: OpenApiDocument) =>
  Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => HTTP_METHODS.includes(key))
      .map((method) => ({ key: `${method.toUpperCase()} ${path}`, path, operation: item[method]! })),
  );

describe('/openapi.json', () => {
  test('is an OpenAPI 3.1 document named after the service and its version, valid by the OpenAPI schema', async () => {
    const document = await fetchDocument(dev);
    expect(document.openapi).toBe('3.1.0');
    expect(document.info).toMatchObject({ title: 'Gemini Coop', version: packageJson.version });
    const result = await new Validator().validate(document as unknown as Record<string, unknown>);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
  });

  test('describes every route the REST API serves, and nothing it does not', async () => {
    const served = createRestApi(dev.app.services).routes.map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, '{$1}')}`);
    const described = operationsOf(await fetchDocument(dev)).map(({ key }) => key);
    expect(served).toContain('GET /health');
    expect(served).toContain('DELETE /api/chats/{chat_id}/participants/{user_id}');
    expect(described.sort()).toEqual(served.sort());
  });

  test('production serves the same document', async () => {
    expect(await fetchDocument(prod)).toEqual(await fetchDocument(dev));
  });

  test('every operation describes its JSON answer (or its redirect), and its 422 where it takes input', async () => {
    for (const { key, operation } of operationsOf(await fetchDocument(dev))) {
      // A creation or an upload answers 201 (webhooks, attachments), a sign-in's start and callback may redirect (302),
      // a file download answers its bytes rather than JSON; everything else 200 with JSON.
      const success = (operation.responses['200'] ?? operation.responses['201'])?.content;
      const answer = success?.['application/json']?.schema ?? success?.['application/octet-stream']?.schema ?? operation.responses['302'];
      expect({ key, answer }).toMatchObject({ key, answer: expect.anything() });
      if (operation.parameters?.length || operation.requestBody) {
        expect({ key, schema: operation.responses['422']?.content?.['application/json']?.schema }).toEqual({
          key,
          schema: { $ref: '#/components/schemas/HTTPValidationError' },
        });
      }
    }
  });

  test('the bearer scheme is named exactly on the routes that refuse a request without a token, with their 401', async () => {
    const document = await fetchDocument(dev);
    expect(Object.values(document.components.securitySchemes)).toEqual([expect.objectContaining({ type: 'http', scheme: 'bearer' })]);
    const schemeName = Object.keys(document.components.securitySchemes)[0]!;
    for (const { key, path, operation } of operationsOf(document)) {
      const [method] = key.split(' ');
      const response = await dev.request(path.replace(/\{\w+\}/g, '1'), { method });
      const refused = response.status === 401;
      expect({ key, refused }).toEqual({ key, refused: operation.security !== undefined });
      if (refused) {
        // `{}` alongside: a route that a signed link opens without a token (attachment downloads).
        expect(operation.security?.filter((requirement: object) => Object.keys(requirement).length > 0)).toEqual([{ [schemeName]: [] }]);
        expect(operation.responses['401']?.headers).toHaveProperty('WWW-Authenticate');
      }
    }
  });

  test("inputs are described by the services' own rules", async () => {
    const document = await fetchDocument(dev);
    const register = document.paths['/api/auth/register']!.post!.requestBody!.content['application/json']!.schema;
    expect(register.required?.sort()).toEqual(['email', 'password', 'username']);
    expect(register.properties?.username).toMatchObject({ minLength: 3, maxLength: 32, pattern: '^[A-Za-z0-9_.-]+$' });
    expect(register.properties?.password).toMatchObject({ minLength: 8, maxLength: 128 });
    // Login takes the OAuth2 form too.
    expect(Object.keys(document.paths['/api/auth/login']!.post!.requestBody!.content).sort()).toEqual([
      'application/json',
      'application/x-www-form-urlencoded',
    ]);
    const history = document.paths['/api/chats/{chat_id}/messages']!.get!.parameters!;
    expect(history.find((parameter) => parameter.name === 'chat_id')).toMatchObject({ in: 'path', required: true, schema: { type: 'integer', minimum: 1 } });
    expect(history.find((parameter) => parameter.name === 'limit')).toMatchObject({ in: 'query', schema: { minimum: 1, maximum: 200, default: 50 } });
    const search = document.paths['/api/users/search']!.get!.parameters!;
    expect(search.find((parameter) => parameter.name === 'query')).toMatchObject({ in: 'query', required: true });
  });
});

describe('the answers are what the document says', () => {
  /** The schema a route's description gives for `status`; a status it does not list fails the test. */
  function describedSchema(method: string, template: string, status: number): z.ZodType {
    const { route } = restRoutes.find((candidate) => candidate.route.method === method.toLowerCase() && candidate.route.path === template)!;
    const response = route.responses[status] as { content?: Record<string, { schema: z.ZodType }> } | undefined;
    if (!response?.content) throw new Error(`${method} ${template} answered ${status}, which its description does not list`);
    return response.content['application/json']!.schema;
  }

  /** Calls a route as `user` and checks the answer against the route's description; returns the status and body. */
  async function call(
    user: TestUser | null,
    method: string,
    template: string,
    { values = {}, ...init }: { values?: Record<string, number | string>; json?: unknown; body?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: any }> {
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => String(values[name]));
    const response = await dev.request(path, { method, token: user?.token, ...init });
    const body = await response.json();
    const checked = describedSchema(method, template.split('?')[0]!, response.status).safeParse(body);
    if (!checked.success) throw new Error(`${method} ${path} → ${response.status} ${JSON.stringify(body)}: ${checked.error.message}`);
    return { status: response.status, body };
  }

  test('a tour of every route, successes and refusals, checked against the documented schema of each status', async () => {
    const [owner, member, outsider] = [await signUp(dev), await signUp(dev), await signUp(dev)];
    const name = `tour_${crypto.randomUUID().slice(0, 8)}`;
    const statuses: string[] = [];
    const expectStatus = async (expected: number, result: Promise<{ status: number; body: any }>) => {
      const { status, body } = await result;
      statuses.push(String(status));
      expect({ status, body }).toMatchObject({ status: expected });
      return body;
    };

    await expectStatus(200, call(null, 'GET', '/health'));
    await expectStatus(200, call(null, 'POST', '/api/auth/register', { json: { username: name, email: `${name}@example.com`, password: 'password123' } }));
    await expectStatus(400, call(null, 'POST', '/api/auth/register', { json: { username: name, email: `${name}@example.com`, password: 'password123' } }));
    await expectStatus(422, call(null, 'POST', '/api/auth/register', { json: { username: name } }));
    await expectStatus(
      413,
      call(null, 'POST', '/api/auth/register', { body: '{}', headers: { 'content-type': 'application/json', 'content-length': String(MAX_BODY_BYTES + 1) } }),
    );
    await expectStatus(200, call(null, 'POST', '/api/auth/login', { json: { username: name, password: 'password123' } }));
    await expectStatus(
      200,
      call(null, 'POST', '/api/auth/login', {
        body: new URLSearchParams({ grant_type: 'password', username: name, password: 'password123' }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
    );
    await expectStatus(401, call(null, 'POST', '/api/auth/login', { json: { username: name, password: 'wrong-password' } }));
    await expectStatus(200, call(owner, 'GET', '/api/auth/me'));
    await expectStatus(401, call(null, 'GET', '/api/auth/me'));
    await expectStatus(200, call(owner, 'GET', `/api/users/search?query=${member.username}`));
    await expectStatus(422, call(owner, 'GET', '/api/users/search'));

    const chat = await expectStatus(
      200,
      call(owner, 'POST', '/api/chats', { json: { name: 'Tour', is_group: true, participant_usernames: [member.username] } }),
    );
    const values = { chat_id: chat.id as number };
    const sent = await expectStatus(200, call(owner, 'POST', '/api/chats/{chat_id}/messages', { values, json: { content: 'hello' } }));
    await expectStatus(200, call(owner, 'GET', '/api/chats'));
    await expectStatus(200, call(owner, 'GET', '/api/chats/{chat_id}', { values }));
    await expectStatus(404, call(owner, 'GET', '/api/chats/{chat_id}', { values: { chat_id: 2_000_000_000 } }));
    await expectStatus(403, call(outsider, 'GET', '/api/chats/{chat_id}', { values }));
    await expectStatus(422, call(owner, 'GET', '/api/chats/{chat_id}', { values: { chat_id: 'abc' } }));
    await expectStatus(200, call(owner, 'GET', '/api/chats/{chat_id}/messages', { values }));
    const message = { ...values, message_id: sent.id as number };
    await expectStatus(200, call(owner, 'PATCH', '/api/chats/{chat_id}/messages/{message_id}', { values: message, json: { content: 'hello again' } }));
    await expectStatus(403, call(member, 'PATCH', '/api/chats/{chat_id}/messages/{message_id}', { values: message, json: { content: 'not mine' } }));
    await expectStatus(422, call(owner, 'PATCH', '/api/chats/{chat_id}/messages/{message_id}', { values: message, json: { content: '' } }));
    await expectStatus(
      404,
      call(owner, 'PATCH', '/api/chats/{chat_id}/messages/{message_id}', { values: { ...values, message_id: 2_000_000_000 }, json: { content: 'x' } }),
    );
    const doomed = await expectStatus(200, call(member, 'POST', '/api/chats/{chat_id}/messages', { values, json: { content: 'to be deleted' } }));
    const doomedMessage = { ...values, message_id: doomed.id as number };
    await expectStatus(403, call(outsider, 'DELETE', '/api/chats/{chat_id}/messages/{message_id}', { values: doomedMessage }));
    await expectStatus(200, call(owner, 'DELETE', '/api/chats/{chat_id}/messages/{message_id}', { values: doomedMessage }));
    await expectStatus(404, call(owner, 'DELETE', '/api/chats/{chat_id}/messages/{message_id}', { values: doomedMessage }));
    await expectStatus(422, call(owner, 'DELETE', '/api/chats/{chat_id}/messages/{message_id}', { values: { ...values, message_id: 'first' } }));
    await expectStatus(200, call(owner, 'GET', '/api/chats/{chat_id}/participants', { values }));
    await expectStatus(200, call(owner, 'POST', '/api/chats/{chat_id}/invite', { values, json: { username: outsider.username } }));
    await expectStatus(400, call(owner, 'POST', '/api/chats/{chat_id}/invite', { values, json: { username: outsider.username } }));
    await expectStatus(404, call(owner, 'POST', '/api/chats/{chat_id}/invite', { values, json: { username: `${name}_nobody` } }));
    await expectStatus(200, call(member, 'POST', '/api/chats/{chat_id}/mark-read', { values }));
    const receipts = await expectStatus(200, call(owner, 'GET', '/api/chats/{chat_id}/read-receipts', { values }));
    expect(receipts[String(sent.id)]).toEqual([expect.objectContaining({ user_id: member.id })]);
    await expectStatus(403, call(outsider, 'GET', '/api/chats/{chat_id}/read-receipts', { values: { chat_id: 2_000_000_000 } }));
    await expectStatus(200, call(owner, 'DELETE', '/api/chats/{chat_id}/participants/{user_id}', { values: { ...values, user_id: outsider.id } }));
    await expectStatus(400, call(owner, 'DELETE', '/api/chats/{chat_id}/participants/{user_id}', { values: { ...values, user_id: owner.id } }));
    await expectStatus(404, call(owner, 'DELETE', '/api/chats/{chat_id}/participants/{user_id}', { values: { ...values, user_id: outsider.id } }));
    await expectStatus(400, call(owner, 'POST', '/api/chats/{chat_id}/leave', { values }));
    await expectStatus(200, call(member, 'POST', '/api/chats/{chat_id}/leave', { values }));
    await expectStatus(403, call(member, 'DELETE', '/api/chats/{chat_id}', { values }));
    await expectStatus(200, call(owner, 'DELETE', '/api/chats/{chat_id}', { values }));

    expect(new Set(statuses)).toEqual(new Set(['200', '400', '401', '403', '404', '413', '422']));
  });
});

describe('/docs', () => {
  test('is a Swagger UI page whose every asset this server serves, with nothing from elsewhere and no inline script', async () => {
    const page = await dev.request('/docs', { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toStartWith('text/html');
    const html = await page.text();
    expect(html).not.toMatch(/https?:/i);
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    expect(html).toContain('id="swagger-ui"');

    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe');

    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(assets.sort()).toEqual(['/docs/assets/start.js', '/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css']);
    for (const asset of assets) {
      const response = await dev.request(asset);
      expect({ asset, status: response.status }).toEqual({ asset, status: 200 });
      expect(response.headers.get('content-type')).toMatch(asset.endsWith('.css') ? /^text\/css/ : /^(text|application)\/javascript/);
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect((await response.text()).length).toBeGreaterThan(0);
    }
  });

  test('the stylesheet and the bundle are the installed swagger-ui-dist files', async () => {
    for (const name of ['swagger-ui.css', 'swagger-ui-bundle.js']) {
      const served = await (await dev.request(`/docs/assets/${name}`)).text();
      expect(served === (await Bun.file(Bun.fileURLToPath(import.meta.resolve(`swagger-ui-dist/${name}`))).text())).toBe(true);
    }
  });

  test("the page's own script starts Swagger UI on /openapi.json", async () => {
    const script = await (await dev.request('/docs/assets/start.js')).text();
    expect(script).toContain('SwaggerUIBundle(');
    expect(script).toContain("url: '/openapi.json'");
    expect(script).not.toMatch(/https?:/i);
  });

  test('no other file is served from there', async () => {
    for (const path of [
      '/docs/assets/swagger-ui.js.map',
      '/docs/assets/index.html',
      '/docs/assets/..%2F..%2Fpackage.json',
      '/docs/assets/%2e%2e/%2e%2e/package.json',
      '/docs/assets/',
    ]) {
      const response = await dev.request(path);
      expect({ path, status: response.status, body: await response.json() }).toEqual({ path, status: 404, body: { detail: 'Not Found' } });
    }
  });

  test('is served in production too', async () => {
    expect((await prod.request('/docs')).status).toBe(200);
  });
});

describe('the front door, GET /', () => {
  const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
  const LINKS = { graphiql: '/graphql', docs: '/docs', openapi: '/openapi.json', health: '/health' };

  test('a browser gets a page naming the service, with a link to GraphiQL, the docs, the OpenAPI document and /health', async () => {
    const response = await dev.request('/', { headers: { accept: BROWSER_ACCEPT } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toStartWith('text/html');
    expect(response.headers.get('vary')).toContain('Accept');
    expect(response.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await response.text();
    expect(html).toContain('<h1>Gemini Coop</h1>');
    const hrefs = [...html.matchAll(/href="([^"]+)"/g)].map((match) => match[1]);
    expect(hrefs.sort()).toEqual(Object.values(LINKS).sort());
  });

  test('anything else gets the same links as JSON', async () => {
    for (const accept of [undefined, 'application/json', '*/*']) {
      const response = await dev.request('/', { headers: accept ? { accept } : {} });
      expect(response.status).toBe(200);
      expect(response.headers.get('vary')).toContain('Accept');
      expect(await response.json()).toEqual({ name: 'Gemini Coop', links: LINKS });
    }
  });

  test('every link answers a browser', async () => {
    for (const link of Object.values(LINKS)) {
      const response = await dev.request(link, { headers: { accept: BROWSER_ACCEPT } });
      expect({ link, status: response.status }).toEqual({ link, status: 200 });
    }
  });

  test('production names no GraphiQL, which it does not serve', async () => {
    const { graphiql: _graphiql, ...productionLinks } = LINKS;
    expect(await (await prod.request('/')).json()).toEqual({ name: 'Gemini Coop', links: productionLinks });
    const html = await (await prod.request('/', { headers: { accept: BROWSER_ACCEPT } })).text();
    expect(html).not.toContain('/graphql');
  });
});

describe("GraphiQL's opening example", () => {
  const graphql = (query: string, token?: string) =>
    dev.request('/graphql', { method: 'POST', json: { query }, token }).then((response) => response.json() as Promise<{ data?: any; errors?: unknown }>);

  test('is what GraphiQL opens with', async () => {
    const response = await dev.request('/graphql', { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain(JSON.stringify(GRAPHIQL_EXAMPLE));
  });

  test('works as written: its register and login mutations give a token, which in its Authorization header runs its query', async () => {
    const commented = GRAPHIQL_EXAMPLE.split('\n')
      .map((line) => line.replace(/^#\s*/, ''))
      .filter((line) => line.startsWith('mutation') || line.startsWith('{"Authorization"'));
    expect(commented).toHaveLength(3);
    const [registerMutation, loginMutation, headersPane] = commented as [string, string, string];
    expect(registerMutation).toContain('register(');
    expect(loginMutation).toContain('login(');

    const name = `ada_${crypto.randomUUID().slice(0, 8)}`;
    const registered = await graphql(registerMutation.replaceAll('ada', name));
    expect(registered.errors).toBeUndefined();
    expect(typeof registered.data.register.token).toBe('string');
    const loggedIn = await graphql(loginMutation.replaceAll('ada', name));
    expect(loggedIn.errors).toBeUndefined();

    const headers = JSON.parse(headersPane.replace('<token>', loggedIn.data.login.token)) as Record<string, string>;
    const response = await dev.request('/graphql', { method: 'POST', json: { query: GRAPHIQL_EXAMPLE }, headers });
    const answer = (await response.json()) as { data?: any; errors?: unknown };
    expect(answer.errors).toBeUndefined();
    expect(answer.data.me.username).toBe(name);
    expect(answer.data.chats).toEqual([]);
  });
});
