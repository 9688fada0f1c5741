import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { Lexer, Source, TokenKind } from 'graphql';
import { GRAPHQL_LIMITS } from '../src/app';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';

/**
 * Each GraphQL limit (src/app.ts, GRAPHQL_LIMITS via graphql-armor) tested at the limit and one
 * over, with queries built against the real schema; then what production hides: introspection,
 * field suggestions, GraphiQL. Batching is off everywhere.
 *
 * What armor answers when it refuses (observed with @escape.tech/graphql-armor 3.2):
 * - depth, aliases, directives, cost: one error "Syntax Error: <Limit> of N exceeded, found M."
 *   with NO extensions.code and no locations, and HTTP 200 even for
 *   `Accept: application/graphql-response+json` (the rules throw instead of reporting, so yoga
 *   does not treat it as a validation failure);
 * - tokens: "Syntax Error: Token limit of 1000 exceeded." with extensions.code GRAPHQL_PARSE_FAILED.
 */

interface GraphQLError {
  message: string;
  extensions?: { code?: string; [key: string]: unknown };
}
interface GraphQLResponse<T = any> {
  data?: T | null;
  errors?: GraphQLError[];
}

let dev: TestApp;
let prod: TestApp;
let user: TestUser;
let prodUser: TestUser;
let chatId: number;

beforeAll(async () => {
  [dev, prod] = await Promise.all([createTestApp(), createTestApp({ NODE_ENV: 'production' })]);
  [user, prodUser] = await Promise.all([signUp(dev), signUp(prod)]);
  // A chat with a message, so queries at the limit resolve real nested data.
  const chat = await dev.request('/api/chats', { method: 'POST', json: { name: 'limits' }, token: user.token });
  chatId = ((await chat.json()) as { id: number }).id;
  const sent = await dev.request(`/api/chats/${chatId}/messages`, { method: 'POST', json: { content: 'hello' }, token: user.token });
  expect(sent.status).toBe(200);
});
afterAll(() => Promise.all([dev.cleanup(), prod.cleanup()]));

async function gql(app: TestApp, query: string, token?: string, accept = 'application/json') {
  const response = await app.request('/graphql', { method: 'POST', json: { query }, token, headers: { accept } });
  return { status: response.status, body: (await response.json()) as GraphQLResponse };
}

/** The query ran: data, no error at all (so in particular no limit error). */
async function accepted(query: string) {
  const { status, body } = await gql(dev, query, user.token);
  expect(body.errors).toBeUndefined();
  expect(status).toBe(200);
  expect(body.data).toBeTruthy();
  return body.data;
}

/** The query was refused before running: exactly one error, matching `message`, and no data. */
async function refused(query: string, message: RegExp, app = dev, token = user.token) {
  const { body } = await gql(app, query, token);
  expect(body.data ?? undefined).toBeUndefined();
  expect(body.errors).toHaveLength(1);
  const error = body.errors![0]!;
  expect(error.message).toMatch(message);
  return error;
}

/** armor's validation-rule refusals carry no code today; GRAPHQL_VALIDATION_FAILED is what they should carry. */
function expectValidationRuleCode(error: GraphQLError) {
  expect([undefined, 'GRAPHQL_VALIDATION_FAILED']).toContain(error.extensions?.code);
}

/** Tokens as graphql-js's lexer (which armor counts) sees them: punctuation and names, not commas or EOF. */
function countTokens(query: string): number {
  const lexer = new Lexer(new Source(query));
  let count = 0;
  while (lexer.advance().kind !== TokenKind.EOF) count++;
  return count;
}

const repeat = (count: number, make: (index: number) => string) => Array.from({ length: count }, (_, index) => make(index)).join(' ');

const { depth, aliases, tokens, directives, cost } = GRAPHQL_LIMITS;

describe(`depth (${depth})`, () => {
  // The deepest field path in the schema is chats > messages > edges > node > user > id (6 levels);
  // armor counts each inline fragment as a level too, so `... on User` takes it to and over the limit.
  const FIELD_LEVELS = 6;
  const deep = (levels: number) => {
    let inner = 'id';
    for (let i = FIELD_LEVELS; i < levels; i++) inner = `... on User { ${inner} }`;
    return `{ chats { messages { edges { node { user { ${inner} } } } } } }`;
  };

  test(`a query of depth ${depth} runs`, async () => {
    const data = (await accepted(deep(depth))) as { chats: { messages: { edges: { node: { user: { id: string } } }[] } }[] };
    const ours = data.chats.flatMap((chat) => chat.messages.edges);
    expect(ours.map((edge) => edge.node.user.id)).toContain(String(user.id));
  });

  test(`a query of depth ${depth + 1} is refused, naming the limit`, async () => {
    const error = await refused(deep(depth + 1), new RegExp(`depth limit of ${depth} exceeded, found ${depth + 1}`, 'i'));
    expectValidationRuleCode(error);
  });
});

describe(`aliases (${aliases})`, () => {
  const aliased = (count: number) => `{ ${repeat(count, (i) => `a${i}: me { id }`)} }`;

  test(`${aliases} aliases run`, async () => {
    const data = (await accepted(aliased(aliases))) as Record<string, { id: string }>;
    expect(Object.keys(data)).toHaveLength(aliases);
  });

  test(`${aliases + 1} aliases are refused, naming the limit`, async () => {
    const error = await refused(aliased(aliases + 1), new RegExp(`aliases limit of ${aliases} exceeded, found ${aliases + 1}`, 'i'));
    expectValidationRuleCode(error);
  });

  test(`${aliases + 1} aliased mutations are refused before any of them runs`, async () => {
    const before = ((await (await dev.request('/api/chats', { token: user.token })).json()) as unknown[]).length;
    const mutation = `mutation { ${repeat(aliases + 1, (i) => `c${i}: createChat(name: "alias ${i}") { id }`)} }`;
    await refused(mutation, new RegExp(`aliases limit of ${aliases} exceeded`, 'i'));
    const after = ((await (await dev.request('/api/chats', { token: user.token })).json()) as unknown[]).length;
    expect(after).toBe(before);
  });
});

describe(`tokens (${tokens})`, () => {
  // `{ me { id username … } }`: 5 tokens of frame plus one per field. The fields repeat (and merge);
  // they cycle through all five names because graphql-js gives up ("Validation aborted.") comparing
  // ~1000 copies of one field with each other.
  const USER_FIELDS = ['id', 'username', 'email', 'createdAt', '__typename'];
  const long = (count: number) => `{ me { ${repeat(count - 5, (i) => USER_FIELDS[i % USER_FIELDS.length]!)} } }`;

  test(`a query of exactly ${tokens} tokens runs`, async () => {
    const query = long(tokens);
    expect(countTokens(query)).toBe(tokens);
    const data = (await accepted(query)) as { me: { id: string } };
    expect(data.me.id).toBe(String(user.id));
  });

  test(`a query of ${tokens + 1} tokens is refused at parse time, naming the limit`, async () => {
    const query = long(tokens + 1);
    expect(countTokens(query)).toBe(tokens + 1);
    const error = await refused(query, new RegExp(`token limit of ${tokens} exceeded`, 'i'));
    expect(error.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
  });
});

describe(`directives (${directives})`, () => {
  const directed = (count: number) => `{ me { ${repeat(count, () => 'id @include(if: true)')} } }`;

  test(`${directives} directives run`, async () => {
    const data = (await accepted(directed(directives))) as { me: { id: string } };
    expect(data.me.id).toBe(String(user.id));
  });

  test(`${directives + 1} directives are refused, naming the limit`, async () => {
    const error = await refused(directed(directives + 1), new RegExp(`directives limit of ${directives} exceeded, found ${directives + 1}`, 'i'));
    expectValidationRuleCode(error);
  });
});

describe(`cost (${cost})`, () => {
  // armor's cost: a leaf costs 1; a field with a selection costs 2 + 1.5 × its children, the whole
  // multiplied by its `first`/`last` argument. So page sizes are what make a query expensive.
  const leaf = 1;
  const object = (...children: number[]) => 2 + 1.5 * children.reduce((sum, child) => sum + child, 0);
  const PAGE_FIELDS = 'edges { cursor node { id content createdAt user { id username } } } pageInfo { hasNextPage endCursor }';
  const pageCost = object(object(leaf, object(leaf, leaf, leaf, object(leaf, leaf))), object(leaf, leaf));
  const costOf = (pages: number, first: number) => object(pages * pageCost * first);
  const paged = (pages: number, first: number) => `{ chats { ${repeat(pages, (i) => `p${i}: messages(first: ${first}) { ${PAGE_FIELDS} }`)} } }`;

  // The fewest aliased pages, each at most the connection's maximum of 200, whose largest size
  // within the limit is known; then that size is at the limit and one more is over it.
  const MAX_PAGE = 200;
  let pages = 0;
  let first = 0;
  do {
    pages++;
    first = 1;
    while (costOf(pages, first + 1) <= cost) first++;
  } while (first + 1 > MAX_PAGE && pages < aliases);

  test('the largest pages within the cost limit run', async () => {
    expect(costOf(pages, first)).toBeLessThanOrEqual(cost);
    expect(first + 1).toBeLessThanOrEqual(MAX_PAGE);
    const data = (await accepted(paged(pages, first))) as { chats: Record<string, { edges: { node: { content: string } }[] }>[] };
    expect(data.chats.flatMap((chat) => chat.p0!.edges.map((edge) => edge.node.content))).toContain('hello');
  });

  test('one more item per page goes over and is refused, with the cost armor computed', async () => {
    expect(costOf(pages, first + 1)).toBeGreaterThan(cost);
    const error = await refused(paged(pages, first + 1), new RegExp(`cost limit of ${cost} exceeded`, 'i'));
    expect(error.message).toContain(`found ${costOf(pages, first + 1)}.`);
    expectValidationRuleCode(error);
  });

  test('a huge page size is refused however small the selection', async () => {
    await refused(`{ chats { messages(first: 1000000) { edges { cursor } } } }`, new RegExp(`cost limit of ${cost} exceeded`, 'i'));
  });
});

test('the limits hold in production too', async () => {
  await refused(`{ ${repeat(aliases + 1, (i) => `a${i}: me { id }`)} }`, new RegExp(`aliases limit of ${aliases}`, 'i'), prod, prodUser.token);
  const tooDeep = `{ me { ${'... on User { '.repeat(depth)}id${' }'.repeat(depth)} } }`;
  await refused(tooDeep, new RegExp(`depth limit of ${depth}`, 'i'), prod, prodUser.token);
});

describe('batching is off', () => {
  test('a JSON array of operations is 400 "Batching is not supported." and none of them runs', async () => {
    const chats = async () => ((await (await dev.request('/api/chats', { token: user.token })).json()) as unknown[]).length;
    const before = await chats();
    const operation = { query: 'mutation { createChat(name: "batched") { id } }' };
    const response = await dev.request('/graphql', { method: 'POST', json: [operation, operation], token: user.token });
    expect(response.status).toBe(400);
    const body = (await response.json()) as GraphQLResponse;
    expect(body.errors?.[0]?.message).toBe('Batching is not supported.');
    expect(body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    expect(await chats()).toBe(before);
  });

  test('production refuses it the same way', async () => {
    const response = await prod.request('/graphql', { method: 'POST', json: [{ query: '{ me { id } }' }], token: prodUser.token });
    expect(response.status).toBe(400);
  });
});

describe('introspection', () => {
  test('works outside production', async () => {
    const { body } = await gql(dev, '{ __schema { queryType { name } } __type(name: "User") { name } }');
    expect(body.errors).toBeUndefined();
    expect(body.data).toEqual({ __schema: { queryType: { name: 'Query' } }, __type: { name: 'User' } });
  });

  for (const query of ['{ __schema { queryType { name } } }', '{ __type(name: "User") { fields { name } } }']) {
    test(`is refused in production: ${query}`, async () => {
      const { body } = await gql(prod, query);
      expect(body.data ?? undefined).toBeUndefined();
      expect(body.errors?.length).toBeGreaterThan(0);
      for (const error of body.errors!) {
        expect(error.message).toMatch(/introspection has been disabled/);
        expect(error.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      }
      expect(JSON.stringify(body)).not.toContain('"Message"');
    });
  }

  test('__typename still works in production (clients need it)', async () => {
    const { body } = await gql(prod, '{ me { id __typename } }', prodUser.token);
    expect(body.errors).toBeUndefined();
    expect(body.data).toEqual({ me: { id: String(prodUser.id), __typename: 'User' } });
  });
});

describe('field suggestions', () => {
  const typos = [
    { query: '{ me { usernam } }', hint: 'Did you mean "username"?' },
    { query: '{ chats { messages(firs: 1) { edges { cursor } } } }', hint: 'Did you mean "first"?' },
    { query: '{ me { ... on Usr { id } } }', hint: 'Did you mean "User"?' },
  ];

  for (const { query, hint } of typos) {
    test(`outside production a typo gets a hint: ${query}`, async () => {
      const error = await refused(query, /./);
      expect(error.message).toContain(hint);
      expect(error.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    });

    test(`in production the hint is hidden: ${query}`, async () => {
      const error = await refused(query, /\[Suggestion hidden\]/, prod, prodUser.token);
      expect(error.message).not.toContain('Did you mean');
      expect(error.message).not.toContain(hint.match(/"[^"]+"/)![0]);
      expect(error.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    });
  }
});

describe('GraphiQL', () => {
  test('is served to browsers outside production', async () => {
    const response = await dev.request('/graphql', { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toStartWith('text/html');
    expect(await response.text()).toContain('GraphiQL');
  });

  test('is not served in production', async () => {
    for (const accept of ['text/html', 'text/html,application/xhtml+xml,*/*;q=0.8', '*/*']) {
      const response = await prod.request('/graphql', { headers: { accept } });
      // text/html is 406; */* gets yoga's JSON "Must provide query string."
      expect(response.headers.get('content-type') ?? '').not.toContain('text/html');
      const text = await response.text();
      expect(text).not.toContain('GraphiQL');
      expect(text).not.toContain('<html');
    }
  });
});
