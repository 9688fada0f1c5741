import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Server } from 'bun';
import { cursorSchema } from '../src/services/validation';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import { captureLogs } from './support/logs';
import { type ChatClient, MISSING_CHAT_ID, socketKit, type SocketKit } from './support/sockets';

/**
 * Generated bad input, a few thousand requests and frames, from a seeded PRNG: the same seed gives
 * the same inputs (FUZZ_SEED=<n> to try another; a failure names its seed). Every input is bad by
 * construction — at least one part of it must be refused — so the invariants are simple:
 *
 * - REST and GraphQL never answer 5xx, and GraphQL never answers INTERNAL_SERVER_ERROR;
 * - `/ws` answers every bad frame with one `{"type":"error"}` frame and stays open (except the one
 *   explicit frame over 64 KiB, closed with 1009 by design);
 * - nothing is stored: users, chats, participants and messages are counted before and after;
 * - the server still serves afterwards.
 *
 * REST and GraphQL run in-process (`t.request`); only `/ws` needs the real server.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_2026) >>> 0;
const REST_CASES = 2_000;
const GRAPHQL_CASES = 1_000;
const WS_FRAMES = 1_500;
/** Per test: generous, so a slow machine fails on an invariant rather than a timer (the whole file runs in ~6 s). */
const VERBOSE = Boolean(process.env.FUZZ_VERBOSE);
const TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Seeded generation

/** mulberry32: small, fast, and the same everywhere. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
  };
}
type Rng = ReturnType<typeof prng>;

/** A JSON value, or raw JSON text for what JSON.stringify cannot write (1e309, -0, 2**53+1 exactly). */
class Raw {
  constructor(readonly raw: string) {}
}
type Json = null | boolean | number | string | Raw | Json[] | { [key: string]: Json };
const raw = (text: string) => new Raw(text);

/** Sets `key` as an own property, even `__proto__`, so it is sent as a key like any other. */
function setKey(object: Record<string, Json>, key: string, value: Json): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

function encode(value: Json): string {
  if (value instanceof Raw) return value.raw;
  if (Array.isArray(value)) return `[${value.map(encode).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}:${encode(item)}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

const RAW_NUMBERS = [
  '1e309',
  '-1e309',
  '-0',
  '0',
  '-1',
  '1.5',
  '0.1',
  '1e-400',
  '2147483647',
  '2147483648',
  '-2147483649',
  '9007199254740993',
  '123456789012345678901234567890',
  '1E2',
  '-0.0',
  '4.9e-324',
  '1.7976931348623157e308',
].map(raw);

/** Characters no username may hold (and that `trim` does not remove from the middle). */
const FORBIDDEN_IN_USERNAME = [' ', '\u0000', '@', '/', '\u202e', '\u200b', '\ufeff', '🤖', 'é', '\ud800', '\u0301', '%', '"', '\n'];

const STRINGS = [
  '',
  ' ',
  '\t\n\r',
  '\u0000',
  'a\u0000b',
  '\u0000'.repeat(64),
  '\ud800',
  '\udfff',
  'x\ud83d',
  '\udc00\ud800',
  'ok\ud800ok',
  '\u202eevil\u202c',
  '\u200f\u200e',
  'مرحبا بالعالم',
  'שלום',
  '\u200b',
  '\u200d\u200c',
  '\ufeff',
  '🤖',
  '👨‍👩‍👧‍👦',
  '🇺🇳',
  '🏳️‍🌈',
  `e${'\u0301'.repeat(300)}`,
  'Z̷̢̛̛̤̙̜a̶̛̝l̷̠͝g̵͖̈o̸̳͐',
  '\u2028\u2029',
  '\u0001\u001f\u007f',
  '\ufffd',
  '\\ud800',
  "' OR '1'='1",
  "'; DROP TABLE users; --",
  '%00',
  '%ff',
  '%E0%A4%A',
  '../../../etc/passwd',
  '<script>alert(1)</script>',
  '{{7*7}}',
  '${7*7}',
  '__proto__',
  'constructor',
  'prototype',
  'null',
  'true',
  '1e309',
  '-0',
  '0x1',
  'NaN',
  'Infinity',
  '/bot',
  '/bot ',
  '\u00a0\u3000\u2003',
  'ａｄｍｉｎ',
  'İı',
  'ß',
  '\u{10ffff}',
  '\u{e0001}',
];

function weirdString(rng: Rng, { maxLength = 200_000 }: { maxLength?: number } = {}): string {
  const roll = rng.next();
  if (roll < 0.55) return rng.pick(STRINGS);
  if (roll < 0.85) {
    // Random code points across every plane, lone surrogates included.
    let text = '';
    const length = 1 + rng.int(40);
    for (let index = 0; index < length; index++) {
      const plane = rng.int(4);
      const code = plane === 0 ? rng.int(0x80) : plane === 1 ? rng.int(0x10000) : plane === 2 ? 0xd800 + rng.int(0x800) : 0x10000 + rng.int(0x100000);
      text += String.fromCodePoint(code);
    }
    return text;
  }
  // Huge: up to ~200 KB (or the caller's cap).
  const length = Math.min(maxLength, rng.pick([1_001, 10_001, 65_537, 100_000, 200_000]));
  const unit = rng.pick(['x', '🤖', '\u0000', ' ', 'é\u0301', '\ud800']);
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

function randomJson(rng: Rng, depth = 0): Json {
  const roll = rng.int(depth > 3 ? 5 : 8);
  switch (roll) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick(RAW_NUMBERS);
    case 3:
    case 4:
      return weirdString(rng, { maxLength: 20_000 });
    case 5:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1));
    default: {
      const object: Record<string, Json> = {};
      for (let index = rng.int(4); index > 0; index--)
        setKey(object, rng.chance(0.7) ? rng.pick(STRINGS) : weirdString(rng, { maxLength: 100 }), randomJson(rng, depth + 1));
      return object;
    }
  }
}

/** 5,000 (or more) levels of nesting, as raw JSON: arrays, or (unless `arrays`) objects. */
function deeplyNested(rng: Rng, { arrays = false } = {}): Raw {
  const depth = rng.pick([5_000, 5_000, 50_000]);
  return arrays || rng.chance(0.5) ? raw('['.repeat(depth) + ']'.repeat(depth)) : raw('{"a":'.repeat(depth) + '0' + '}'.repeat(depth));
}

/** A value that is not a string, of any other JSON type. */
const notAString = (rng: Rng): Json => rng.pick<Json>([null, true, false, ...RAW_NUMBERS, [], ['x'], {}, { a: 'x' }, deeplyNested(rng)]);

const MAX_ID = 2_147_483_647;
/** Whether `value` is a chat id the server must accept (so never one a "bad id" may be). */
const validId = (text: string) => /^[+-]?\d+$|^[0-9.eE+-]+$/.test(text) && Number.isInteger(Number(text)) && Number(text) >= 1 && Number(text) <= MAX_ID;

/** A value that is no chat id: wrong types, out of range, or strings that are not decimal digits. */
function badId(rng: Rng): Json {
  const id = badIdCandidate(rng);
  if (id instanceof Raw ? validId(id.raw) : typeof id === 'string' && validId(id)) return `${id instanceof Raw ? id.raw : (id as string)}x`;
  return id;
}

function badIdCandidate(rng: Rng): Json {
  return rng.pick<() => Json>([
    () => rng.pick(RAW_NUMBERS),
    () => rng.pick<Json>([null, true, false, [], [1], ['1'], {}, { id: 1 }]),
    () => rng.pick(['', '0', '-1', '-0', 'abc', '0x1', '1e0', ' 1', '1 ', '1.0', '1_000', '2147483648', '99999999999999999999', '١', '𝟏', 'Infinity', 'NaN']),
    () => weirdString(rng, { maxLength: 1_000 }),
    () => deeplyNested(rng),
  ])();
}

/** A catch-up cursor that must be refused: a bad id, except those a cursor accepts (0 means "from the start"). */
function badCursor(rng: Rng): Json {
  const cursor = badId(rng);
  const value = cursor instanceof Raw ? JSON.parse(cursor.raw) : cursor;
  return cursorSchema.safeParse(value).success ? `${String(value)}x` : cursor;
}

/** Message content that must be refused: wrong type, blank, too long, or text no engine keeps as sent. */
function badContent(rng: Rng): Json {
  return rng.pick<() => Json>([
    () => notAString(rng),
    () => rng.pick(['', ' ', '\t\n\r', '\u00a0\u3000\u2003\ufeff\u2028']),
    () => 'x'.repeat(10_001 + rng.int(190_000)),
    () => `${rng.pick(['hi', '🤖', '/bot hi', 'مرحبا'])}${rng.pick(['\u0000', '\ud800', '\udfff', 'x\ud83d'])}${rng.pick(['', 'there'])}`,
  ])();
}

/** A chat name that must be refused. */
function badChatName(rng: Rng): Json {
  return rng.pick<() => Json>([
    () => rng.pick<Json>([true, false, [], ['x'], {}, ...RAW_NUMBERS]),
    () => 'n'.repeat(101 + rng.int(200_000)),
    () => `room${rng.pick(['\u0000', '\ud800', '\udfff'])}`,
    () => deeplyNested(rng),
  ])();
}

/** Invalid UTF-8, to splice into an otherwise valid body. */
const INVALID_UTF8 = [[0xff], [0xfe, 0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80]];

/** `text` encoded as UTF-8 with invalid bytes spliced in just after `marker`. */
function withInvalidUtf8(rng: Rng, text: string, marker: string): Uint8Array<ArrayBuffer> {
  const at = text.indexOf(marker) + marker.length;
  const before = new TextEncoder().encode(text.slice(0, at));
  const after = new TextEncoder().encode(text.slice(at));
  const bad = rng.pick(INVALID_UTF8);
  const bytes = new Uint8Array(before.length + bad.length + after.length);
  bytes.set(before, 0);
  bytes.set(bad, before.length);
  bytes.set(after, before.length + bad.length);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// The app under test

let t: TestApp;
let server: Server<unknown>;
let kit: SocketKit;
/** Owns `room`; the token most bad requests carry, so they reach validation and the services. */
let owner: TestUser;
/** A user in no chat at all: nothing she sends can land anywhere. */
let stranger: TestUser;
let room: number;
let baseline: Awaited<ReturnType<typeof counts>>;
let ownerSocket: ChatClient;

const counts = async () => {
  const { db } = t.app.services;
  const [users, chats, participants, messages] = await Promise.all([db.user.count(), db.chat.count(), db.chatParticipant.count(), db.message.count()]);
  return { users, chats, participants, messages };
};

/** What the server logs as errors: a bad request must never be one. */
const errors = captureLogs('error');
/** The newest error line, for a finding. */
const lastError = () => {
  const line = errors.lines().at(-1);
  return `${line?.msg} ${line?.err?.message ?? ''}`.slice(0, 200);
};

beforeAll(async () => {
  t = await createTestApp({}, { log: errors.log });
  server = t.listen();
  kit = socketKit(server, t.app.services);
  [owner, stranger] = await Promise.all([
    signUp(t, `fuzz-owner-${crypto.randomUUID().slice(0, 8)}`),
    signUp(t, `fuzz-stranger-${crypto.randomUUID().slice(0, 8)}`),
  ]);
  const created = await t.request('/api/chats', { method: 'POST', token: owner.token, json: { name: 'fuzz room', is_group: true } });
  room = ((await created.json()) as { id: number }).id;
  await t.request(`/api/chats/${room}/messages`, { method: 'POST', token: owner.token, json: { content: 'before the barrage' } });
  // The /ws barrage runs on a socket that has joined the room: a bad frame taken for a good one would echo.
  ownerSocket = kit.chat(owner.token);
  await ownerSocket.opened;
  ownerSocket.send({ type: 'join', chat_id: room });
  await ownerSocket.sync();
  baseline = await counts();
});
afterAll(async () => {
  await kit.dispose();
  await server.stop(true);
  await t.cleanup();
});

/** Collected invariant violations; a test fails with all of them and the seed that found them. */
class Findings {
  readonly list: string[] = [];
  add(label: string, problem: string, input: string) {
    this.list.push(`${label}: ${problem}; input ${preview(input)}`);
  }
  assertNone(what: string) {
    if (this.list.length > 0) {
      throw new Error(`FUZZ_SEED=${SEED}: ${this.list.length} ${what} broke an invariant:\n${this.list.slice(0, 20).join('\n')}`);
    }
  }
}

function preview(text: string): string {
  const shown = JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}…` : text);
  return text.length > 300 ? `${shown} (${text.length} chars)` : shown;
}

const bodyText = (body: string | Uint8Array<ArrayBuffer> | undefined) =>
  body === undefined ? '' : typeof body === 'string' ? body : `<bytes> ${new TextDecoder().decode(body)}`;

// ---------------------------------------------------------------------------------------------
// REST

interface RestCase {
  label: string;
  method: string;
  path: string;
  contentType?: string;
  body?: string | Uint8Array<ArrayBuffer>;
  authorization?: string;
}

const CONTENT_TYPES = [
  'application/json',
  'application/json',
  'application/json; charset=utf-16',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  '',
  '*/*',
];

/** A header value a client can send: printable ASCII only (fetch refuses the rest before sending). */
const headerSafe = (text: string) => text.replace(/[^\x21-\x7e]/g, 'x');

function badAuthorization(rng: Rng): string | undefined {
  return rng.pick([
    undefined,
    '',
    'Bearer',
    'Bearer ',
    `Bearer ${headerSafe(weirdString(rng, { maxLength: 5_000 }))}`,
    `Bearer ${headerSafe(weirdString(rng, { maxLength: 50 }))}.${headerSafe(weirdString(rng, { maxLength: 50 }))}.x`,
    'Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIn0.',
    `Basic ${btoa('owner:password123')}`,
    `Bearer ${owner.token}x`,
    `Bearer ${owner.token.split('.').slice(0, 2).join('.')}.`,
    `bearer  ${owner.token}  extra`,
  ]);
}

/** A body in one of the shapes the fuzzer sends, with its content type. */
function bodyOf(rng: Rng, value: Json | Raw): { body: string; contentType: string } {
  return { body: encode(value), contentType: rng.chance(0.8) ? 'application/json' : rng.pick(CONTENT_TYPES) };
}

/** Any JSON-ish body at all: random shapes, raw garbage, deep nesting. */
function anyBody(rng: Rng): { body: string | Uint8Array<ArrayBuffer>; contentType: string } {
  const roll = rng.int(10);
  if (roll < 5) return bodyOf(rng, randomJson(rng));
  if (roll < 7) return bodyOf(rng, deeplyNested(rng));
  if (roll < 8) return { body: weirdString(rng), contentType: rng.pick(CONTENT_TYPES) };
  if (roll < 9)
    return {
      body: rng.pick(['{', '{"a":', '[1,]', '{"a":1}}', 'nul', '"\\ud800', '{"content":"\\x41"}', '\u0000{}', '{}\u0000']),
      contentType: 'application/json',
    };
  return { body: withInvalidUtf8(rng, '{"x":"abc"}', '"x":"a'), contentType: 'application/json' };
}

const restGenerators: [weight: number, generate: (rng: Rng) => RestCase][] = [
  // Register: every body has at least one field that must be refused, so nothing can be created.
  [
    3,
    (rng) => {
      if (rng.chance(0.3)) return { label: 'register (any body)', method: 'POST', path: '/api/auth/register', ...anyBody(rng) };
      const name = `fuzz_${rng.int(1e9)}`;
      const fields: Record<string, Json> = { username: name, email: `${name}@example.com`, password: 'password123' };
      if (rng.chance(0.25)) {
        // A body valid but for invalid UTF-8 spliced into one field.
        const field = rng.pick(['username', 'email', 'password']);
        const text = encode(fields);
        return {
          label: `register (invalid UTF-8 in ${field})`,
          method: 'POST',
          path: '/api/auth/register',
          contentType: 'application/json',
          body: withInvalidUtf8(rng, text, `"${field}":"${JSON.stringify(fields[field]).slice(1, 4)}`),
        };
      }
      const broken = rng.pick(['username', 'email', 'password', 'missing']);
      if (broken === 'username') {
        fields.username = rng.pick<() => Json>([
          () => notAString(rng),
          () => rng.pick(['', 'ab', ' ab ', 'x'.repeat(33), 'x'.repeat(200_000)]),
          () => `ab${rng.pick(FORBIDDEN_IN_USERNAME)}cd`,
        ])();
      } else if (broken === 'email') {
        fields.email = rng.pick<() => Json>([
          () => notAString(rng),
          () => `x${weirdString(rng, { maxLength: 1_000 }).replace(/@/g, '')}`,
          () => `${'a'.repeat(250)}@example.com`,
        ])();
      } else if (broken === 'password') {
        fields.password = rng.pick<() => Json>([
          () => notAString(rng),
          () => rng.pick(['', 'short', '\u0000'.repeat(7), '🤖🤖🤖']),
          () => 'p'.repeat(129 + rng.int(200_000)),
          () => `password${rng.pick(['\u0000', '\ud800', '\udfff'])}123`,
        ])();
      } else {
        delete fields[rng.pick(['username', 'email', 'password'])];
      }
      for (let extra = rng.int(3); extra > 0; extra--) setKey(fields, rng.pick(STRINGS), randomJson(rng));
      return { label: `register (bad ${broken})`, method: 'POST', path: '/api/auth/register', ...bodyOf(rng, fields) };
    },
  ],
  // Login, JSON and form-encoded: it never stores, but a well-formed attempt costs a password hash
  // (~40 ms), so most attempts are malformed.
  [
    2,
    (rng) => {
      const roll = rng.int(10);
      if (roll < 4) return { label: 'login (any body)', method: 'POST', path: '/api/auth/login', ...anyBody(rng) };
      if (roll < 7) {
        const pairs = Array.from({ length: rng.int(4) }, () => {
          const key = rng.pick(['username', 'password', 'username', 'grant_type', '', '%ff', 'a%00b', weirdString(rng, { maxLength: 50 })]);
          const value = rng.pick(['', '%', '%ff%fe', '%E0%A4%A', '%00', '+', weirdString(rng, { maxLength: 5_000 })]);
          return `${encodeURIComponent(key.isWellFormed() ? key : 'k')}=${rng.chance(0.5) && value.isWellFormed() ? encodeURIComponent(value) : value}`;
        });
        // No pair may make a well-formed attempt: a missing field, or an over-long one.
        const text = rng.chance(0.5)
          ? pairs.filter((pair) => !pair.startsWith('password=')).join('&')
          : `username=u&password=${'p'.repeat(129)}&${pairs.join('&')}`;
        const bytes = rng.chance(0.2) ? withInvalidUtf8(rng, `${text}&username=x`, '&username=') : text;
        return { label: 'login (form)', method: 'POST', path: '/api/auth/login', contentType: 'application/x-www-form-urlencoded', body: bytes };
      }
      if (roll < 9) {
        const fields: Record<string, Json> = {
          username: rng.chance(0.5) ? notAString(rng) : 'x'.repeat(129),
          password: rng.chance(0.5) ? notAString(rng) : weirdString(rng),
        };
        return { label: 'login (bad fields)', method: 'POST', path: '/api/auth/login', ...bodyOf(rng, fields) };
      }
      // Well-formed, and wrong: an ordinary 401 (or 422 for text no engine can look up).
      const fields = { username: weirdString(rng, { maxLength: 128 }), password: weirdString(rng, { maxLength: 128 }) };
      return { label: 'login (well-formed, wrong)', method: 'POST', path: '/api/auth/login', contentType: 'application/json', body: encode(fields) };
    },
  ],
  // Create a chat: refused by its body, or by its token.
  [
    3,
    (rng) => {
      if (rng.chance(0.25))
        return { label: 'create chat (bad token)', method: 'POST', path: '/api/chats', authorization: badAuthorization(rng), ...anyBody(rng) };
      const authorization = `Bearer ${rng.pick([owner, stranger]).token}`;
      const roll = rng.int(5);
      if (roll === 0) {
        // Bodies that are not objects at all.
        return {
          label: 'create chat (not an object)',
          method: 'POST',
          path: '/api/chats',
          authorization,
          ...bodyOf(rng, rng.pick<Json>([null, true, 1, 'x', [], [{}], raw('-0'), raw('1e309'), deeplyNested(rng, { arrays: true })])),
        };
      }
      if (roll === 1)
        return {
          label: 'create chat (invalid UTF-8 name)',
          method: 'POST',
          path: '/api/chats',
          authorization,
          contentType: 'application/json',
          body: withInvalidUtf8(rng, '{"name":"room","is_group":true}', '"name":"ro'),
        };
      const fields: Record<string, Json> = {};
      if (rng.chance(0.5)) fields.name = badChatName(rng);
      else fields.is_group = rng.pick<Json>([null, 'true', 'false', 1, 0, raw('1e309'), raw('-0'), [], {}, [true], 'yes']);
      if (rng.chance(0.3)) setKey(fields, rng.pick(STRINGS), randomJson(rng));
      return { label: 'create chat (bad field)', method: 'POST', path: '/api/chats', authorization, ...bodyOf(rng, fields) };
    },
  ],
  // Reads: any id, any query string, any token: never stored, never a 5xx.
  [
    4,
    (rng) => {
      const id = pathId(rng, { anything: true });
      const suffix = rng.pick(['', '/participants', '/messages', '/messages']);
      const query = suffix === '/messages' && rng.chance(0.8) ? historyQuery(rng) : '';
      const authorization = rng.chance(0.8) ? `Bearer ${rng.pick([owner, stranger]).token}` : badAuthorization(rng);
      return { label: `GET /api/chats/{id}${suffix}`, method: 'GET', path: `/api/chats/${id}${suffix}${query}`, authorization };
    },
  ],
  // Invite: a username nobody has (or a bad body) — nothing to add.
  [
    2,
    (rng) => {
      const id = pathId(rng, { anything: true });
      const authorization = rng.chance(0.85) ? `Bearer ${rng.pick([owner, owner, stranger]).token}` : badAuthorization(rng);
      const roll = rng.int(4);
      const body =
        roll === 0
          ? anyBody(rng)
          : roll === 1
            ? bodyOf(rng, { username: notAString(rng) })
            : bodyOf(rng, { username: rng.chance(0.5) ? weirdString(rng, { maxLength: 300 }) : `nobody_${rng.int(1e9)}` });
      return { label: 'POST /api/chats/{id}/invite', method: 'POST', path: `/api/chats/${id}/invite`, authorization, ...body };
    },
  ],
  // Post a message: bad content, or good content that cannot land (bad path, a stranger, a bad token).
  [
    5,
    (rng) => {
      const roll = rng.int(6);
      if (roll <= 2) {
        const id = rng.chance(0.7) ? String(room) : pathId(rng, { anything: true });
        const authorization = `Bearer ${rng.pick([owner, stranger]).token}`;
        if (roll === 0)
          return {
            label: 'POST messages (invalid UTF-8 content)',
            method: 'POST',
            path: `/api/chats/${id}/messages`,
            authorization,
            contentType: 'application/json',
            body: withInvalidUtf8(rng, '{"content":"hello there"}', '"content":"hel'),
          };
        const body =
          roll === 1 ? bodyOf(rng, { content: badContent(rng), ...(rng.chance(0.3) ? { chat_id: room, user_id: 1, is_bot: true } : {}) }) : anyBody(rng);
        return { label: 'POST messages (bad body)', method: 'POST', path: `/api/chats/${id}/messages`, authorization, ...body };
      }
      const good = bodyOf(rng, { content: rng.pick(['hello', '🤖 hi', 'مرحبا', `e${'\u0301'.repeat(50)}`, '\u200bzero-width', '/bot hi']) });
      if (roll === 3)
        return {
          label: 'POST messages (bad path id)',
          method: 'POST',
          path: `/api/chats/${pathId(rng, { anything: false })}/messages`,
          authorization: `Bearer ${owner.token}`,
          ...good,
        };
      if (roll === 4)
        return {
          label: 'POST messages (stranger)',
          method: 'POST',
          path: `/api/chats/${rng.pick([String(room), pathId(rng, { anything: true })])}/messages`,
          authorization: `Bearer ${stranger.token}`,
          ...good,
        };
      return { label: 'POST messages (bad token)', method: 'POST', path: `/api/chats/${room}/messages`, authorization: badAuthorization(rng), ...good };
    },
  ],
  // Wrong methods and near-miss paths.
  [
    1,
    (rng) => {
      const path = rng.pick([
        '/api/auth/register',
        '/api/auth/login',
        '/api/chats',
        `/api/chats/${room}`,
        `/api/chats/${room}/invite`,
        `/api/chats/${room}/messages/`,
        '/api//chats',
        '/api/chats/%2F',
        `/api/chats/${room}/../${room}`,
        '/api/chats/%00/messages',
        '/API/chats',
        '/graphq1',
      ]);
      // Any method but the one that would create a chat from a random (possibly valid) body, and the
      // one that deletes the room (`..` included, as URLs resolve it).
      const deletesRoom = (name: string) => name === 'DELETE' && new URL(path, 'http://test').pathname === `/api/chats/${room}`;
      const method = rng.pick(
        ['PUT', 'PATCH', 'DELETE', 'GET', 'POST', 'HEAD', 'OPTIONS', 'TRACE'].filter(
          (name) => !(name === 'POST' && path === '/api/chats') && !deletesRoom(name),
        ),
      );
      return { label: 'wrong method or path', method, path, authorization: `Bearer ${owner.token}`, ...anyBody(rng) };
    },
  ],
];

/**
 * A path segment for a chat id. With `anything: false`, only ones that name no chat the owner can
 * post in: malformed, out of range, or missing.
 */
function pathId(rng: Rng, { anything }: { anything: boolean }): string {
  const bad = rng.pick<() => string>([
    () =>
      rng.pick([
        'abc',
        '0',
        '-1',
        '-0',
        '1.5',
        '1e0',
        '0x1',
        '%201',
        '1%20',
        '%E0%A4%A',
        '%00',
        '%ff',
        '2147483648',
        '99999999999999999999',
        '1e309',
        'NaN',
        '١',
        String(MISSING_CHAT_ID),
        `${room}.0`,
        `${room}e0`,
        `0x${room.toString(16)}`,
      ]),
    () => encodeURIComponent(weirdString(rng, { maxLength: 5_000 }).replace(/[\ud800-\udfff]/g, 'x')),
    () => `${'9'.repeat(1 + rng.int(400))}`,
  ])();
  return anything && rng.chance(0.4) ? rng.pick([String(room), `0${room}`, `+${room}`]) : bad;
}

function historyQuery(rng: Rng): string {
  const parts = Array.from({ length: rng.int(4) }, () => {
    const key = rng.pick(['limit', 'before', 'limit', 'before', 'after', 'limit[]', '']);
    const value = rng.pick<() => string>([
      () =>
        rng.pick([
          '',
          '0',
          '-1',
          '-0',
          '1.5',
          '1e2',
          '201',
          '0x10',
          ' 5',
          '5 ',
          '%00',
          '%ff',
          '%E0%A4%A',
          'NaN',
          '9007199254740993',
          '1e309',
          'abc',
          '50',
          String(room),
        ]),
      () => encodeURIComponent(weirdString(rng, { maxLength: 10_000 }).replace(/[\ud800-\udfff]/g, 'x')),
    ])();
    return `${key}=${value}`;
  });
  return parts.length > 0 ? `?${parts.join('&')}` : rng.pick(['', '?', '?&&', '?=']);
}

function pickWeighted<T>(rng: Rng, options: [number, T][]): T {
  let roll = rng.next() * options.reduce((sum, [weight]) => sum + weight, 0);
  for (const [weight, value] of options) {
    roll -= weight;
    if (roll < 0) return value;
  }
  return options.at(-1)![1];
}

async function sendRest(kase: RestCase): Promise<Response> {
  const headers = new Headers();
  if (kase.contentType) headers.set('content-type', kase.contentType);
  if (kase.authorization !== undefined) headers.set('authorization', kase.authorization);
  const hasBody = kase.method !== 'GET' && kase.method !== 'HEAD';
  const response = await t.app.fetch(new Request(`http://test${kase.path}`, { method: kase.method, headers, body: hasBody ? kase.body : undefined }));
  if (!response) throw new Error('the app upgraded an in-process request');
  return response;
}

// ---------------------------------------------------------------------------------------------
// GraphQL

interface GraphqlCase {
  label: string;
  /** A raw POST body, or a GET query string. */
  body?: string | Uint8Array<ArrayBuffer>;
  get?: string;
  token?: string;
  contentType?: string;
}

/** Operations with variables; each case gives at least one variable a value that must be refused. */
const OPERATIONS: { name: string; query: string; variables: (rng: Rng) => Record<string, Json> }[] = [
  { name: 'chat', query: 'query ($id: ID!) { chat(id: $id) { id name participants { username } } }', variables: (rng) => ({ id: badId(rng) }) },
  {
    name: 'chat.messages',
    query: 'query ($id: ID!, $first: Int, $last: Int) { chat(id: $id) { messages(first: $first, last: $last) { edges { node { id content } } } } }',
    variables: (rng) =>
      rng.chance(0.5)
        ? { id: badId(rng), first: rng.pick<Json>([1, null]) }
        : { id: String(room), [rng.pick(['first', 'last'])]: rng.pick<Json>([raw('1e309'), raw('2147483648'), raw('1.5'), '5', true, [], {}, -1, -100]) },
  },
  {
    name: 'chat.messages cursor',
    query: 'query ($id: ID!, $after: String, $before: String) { chat(id: $id) { messages(after: $after, before: $before) { edges { cursor } } } }',
    variables: (rng) => ({
      id: String(room),
      [rng.pick(['after', 'before'])]: rng.pick<() => Json>([
        () => weirdString(rng, { maxLength: 1_000 }),
        () => btoa(rng.pick(['GPC:S:abc', 'GPC:N:1e309', 'GPC:N:99999999999999999999', 'GPC:N:-1', 'GPC:J:{}', 'GPC:X:1', 'GPC:', 'GPC:N:NaN', 'garbage'])),
        () => notAString(rng),
      ])(),
    }),
  },
  {
    name: 'register',
    query: 'mutation ($u: String!, $e: String!, $p: String!) { register(username: $u, email: $e, password: $p) { token } }',
    variables: (rng) => {
      const name = `fuzz_${rng.int(1e9)}`;
      const fields: Record<string, Json> = { u: name, e: `${name}@example.com`, p: 'password123' };
      const broken = rng.pick(['u', 'e', 'p']);
      fields[broken] =
        broken === 'u'
          ? rng.chance(0.5)
            ? notAString(rng)
            : `ab${rng.pick(FORBIDDEN_IN_USERNAME)}cd`
          : broken === 'e'
            ? rng.chance(0.5)
              ? notAString(rng)
              : `x${weirdString(rng).replace(/@/g, '')}`
            : rng.chance(0.5)
              ? notAString(rng)
              : rng.pick(['short', 'p'.repeat(129 + rng.int(190_000)), 'password\u0000123', 'password\ud800123']);
      return fields;
    },
  },
  {
    name: 'login',
    query: 'mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }',
    variables: (rng) =>
      rng.chance(0.5)
        ? { u: notAString(rng), p: 'password123' }
        : { u: owner.username, p: rng.chance(0.5) ? notAString(rng) : 'p'.repeat(129 + rng.int(190_000)) },
  },
  {
    name: 'createChat',
    query: 'mutation ($n: String, $g: Boolean) { createChat(name: $n, isGroup: $g) { id } }',
    variables: (rng): Record<string, Json> =>
      rng.chance(0.6) ? { n: badChatName(rng) } : { n: 'ok', g: rng.pick<Json>(['true', 1, 0, raw('1e309'), [], {}, 'yes']) },
  },
  {
    name: 'inviteUser',
    query: 'mutation ($id: ID!, $u: String!) { inviteUser(chatId: $id, username: $u) { id } }',
    variables: (rng) =>
      rng.chance(0.5)
        ? { id: badId(rng), u: owner.username }
        : { id: String(room), u: rng.chance(0.5) ? notAString(rng) : `nobody_${weirdString(rng, { maxLength: 200 })}` },
  },
  {
    name: 'sendMessage',
    query: 'mutation ($id: ID!, $c: String!) { sendMessage(chatId: $id, content: $c) { id } }',
    variables: (rng) => (rng.chance(0.5) ? { id: badId(rng), c: 'hello' } : { id: String(room), c: badContent(rng) }),
  },
  { name: 'sendTyping', query: 'mutation ($id: ID!) { sendTyping(chatId: $id) }', variables: (rng) => ({ id: badId(rng) }) },
  { name: 'stopBot', query: 'mutation ($id: ID!) { stopBot(chatId: $id) }', variables: (rng) => ({ id: badId(rng) }) },
];

/** Literals for inline arguments: wrong types and out-of-range numbers, written into the document. */
const LITERALS = [
  '1e309',
  '-0',
  '2147483648',
  '99999999999999999999',
  '1.5',
  'true',
  'null',
  '"0x1"',
  '"\\u0000"',
  '"\\ud800"',
  '[1]',
  '{a: 1}',
  '$nope',
  '"""block"""',
  'FOO',
  '""',
  '"abc"',
  '-1',
  '0',
];

const PIECES = [
  '{',
  '}',
  '(',
  ')',
  '[',
  ']',
  ':',
  '$',
  '!',
  '...',
  '@',
  '=',
  '|',
  '&',
  'query',
  'mutation',
  'subscription',
  'fragment',
  'on',
  'Chat',
  'Query',
  'chat',
  'chats',
  'me',
  'id',
  'name',
  'messages',
  'edges',
  'node',
  'content',
  'participants',
  'username',
  'sendMessage',
  'createChat',
  'register',
  'chatId',
  'first',
  'last',
  'after',
  '__typename',
  '__schema',
  '@include(if: true)',
  '@skip(if: $x)',
  '"str"',
  '"\\u{D800}"',
  '"""',
  '#',
  '\n',
  ',',
  '1e309',
  '-0',
  '0x1',
  'true',
  'null',
];

function garbledQuery(rng: Rng): string {
  const roll = rng.int(4);
  if (roll === 0) return Array.from({ length: 1 + rng.int(40) }, () => rng.pick(PIECES)).join(rng.pick([' ', '', '\n']));
  if (roll === 1) return weirdString(rng);
  if (roll === 2) {
    // Deep nesting of selections (over the depth limit), or of list literals.
    const depth = rng.pick([50, 500, 5_000]);
    return rng.chance(0.5) ? `{${' me {'.repeat(depth)} id ${'}'.repeat(depth)}}` : `{ chat(id: ${'['.repeat(depth)}1${']'.repeat(depth)}) { id } }`;
  }
  const field = rng.pick([
    'chat(id: X) { id }',
    'sendMessage(chatId: X, content: "hi") { id }',
    'sendTyping(chatId: X)',
    'stopBot(chatId: X)',
    'chat(id: "1") { messages(first: X) { edges { cursor } } }',
  ]);
  const operation = field.startsWith('chat') ? 'query' : 'mutation';
  return `${operation} { ${field.replace('X', rng.pick(LITERALS))} }`;
}

const graphqlGenerators: [weight: number, generate: (rng: Rng) => GraphqlCase][] = [
  [
    5,
    (rng) => {
      const operation = rng.pick(OPERATIONS);
      return {
        label: `${operation.name} (bad variables)`,
        body: encode({ query: operation.query, variables: operation.variables(rng) }),
        token: owner.token,
        contentType: 'application/json',
      };
    },
  ],
  [
    3,
    (rng) => ({
      label: 'garbled document',
      body: encode({ query: garbledQuery(rng) }),
      token: rng.chance(0.5) ? owner.token : undefined,
      contentType: 'application/json',
    }),
  ],
  [
    2,
    (rng) => {
      // The request envelope itself: wrong types for query, variables, operationName, extensions.
      const operation = rng.pick(OPERATIONS);
      const roll = rng.int(4);
      const envelope: Record<string, Json> =
        roll === 0
          ? { query: notAString(rng), ...(rng.chance(0.5) ? { variables: operation.variables(rng) } : {}) }
          : roll === 1
            ? { query: operation.query, variables: rng.pick<Json>([[], 'x', 1, true, raw('1e309'), deeplyNested(rng)]) }
            : roll === 2
              ? { query: operation.query, variables: operation.variables(rng), operationName: randomJson(rng) }
              : {
                  query: operation.query,
                  variables: operation.variables(rng),
                  extensions: rng.pick<Json>([
                    deeplyNested(rng),
                    'x',
                    [],
                    { persistedQuery: { sha256Hash: weirdString(rng, { maxLength: 100 }), version: 1 } },
                  ]),
                };
      return {
        label: `bad envelope (${operation.name})`,
        body: encode(envelope),
        token: owner.token,
        contentType: rng.chance(0.8) ? 'application/json' : rng.pick(CONTENT_TYPES),
      };
    },
  ],
  [
    1,
    (rng) => {
      const roll = rng.int(5);
      if (roll === 0) return { label: 'raw garbage body', body: weirdString(rng), token: owner.token, contentType: 'application/json' };
      if (roll === 1) return { label: 'deeply nested body', body: deeplyNested(rng).raw, token: owner.token, contentType: 'application/json' };
      if (roll === 2) {
        // Invalid UTF-8 in a request that is bad anyway (GraphQL decodes leniently; see the report).
        const text = encode({
          query: 'mutation ($id: ID!, $c: String!) { sendMessage(chatId: $id, content: $c) { id } }',
          variables: { id: 'abc', c: 'hello' },
        });
        return { label: 'invalid UTF-8 body', body: withInvalidUtf8(rng, text, '"c":"he'), token: owner.token, contentType: 'application/json' };
      }
      if (roll === 3)
        return {
          label: 'batched',
          body: encode(Array.from({ length: 1 + rng.int(3) }, () => ({ query: garbledQuery(rng) }))),
          token: owner.token,
          contentType: 'application/json',
        };
      return {
        label: 'GET',
        get: `?query=${encodeURIComponent(rng.chance(0.5) ? garbledQuery(rng).replace(/[\ud800-\udfff]/g, 'x') : 'mutation { createChat { id } }')}&variables=${encodeURIComponent(rng.pick(['{', '[]', '{"id":1e309}', 'null']))}`,
        token: owner.token,
      };
    },
  ],
];

async function sendGraphql(kase: GraphqlCase): Promise<Response> {
  const headers = new Headers({ accept: 'application/json' });
  if (kase.token) headers.set('authorization', `Bearer ${kase.token}`);
  if (kase.contentType) headers.set('content-type', kase.contentType);
  const request =
    kase.get !== undefined
      ? new Request(`http://test/graphql${kase.get}`, { headers })
      : new Request('http://test/graphql', { method: 'POST', headers, body: kase.body });
  const response = await t.app.fetch(request);
  if (!response) throw new Error('the app upgraded an in-process request');
  return response;
}

// ---------------------------------------------------------------------------------------------
// /ws

interface WsCase {
  label: string;
  frame: string | Uint8Array<ArrayBuffer>;
}

function badFrame(rng: Rng): WsCase {
  const roll = rng.int(12);
  const type = rng.pick(['join', 'leave', 'typing', 'message', 'stop', 'edit', 'delete']);
  const frame: Record<string, Json> = { type };
  switch (roll) {
    case 0:
    case 1:
    case 2: {
      // A known type with a wrong chat_id (any other field may be fine).
      const id = rng.chance(0.9) ? badId(rng) : undefined;
      if (id !== undefined) frame.chat_id = id;
      if (type === 'message' || type === 'edit') frame.content = rng.chance(0.5) ? 'hello' : badContent(rng);
      if (type === 'edit' || type === 'delete') frame.message_id = rng.chance(0.5) ? 1 : badId(rng);
      if (type === 'join' && rng.chance(0.3)) frame.after = rng.chance(0.5) ? 1 : badCursor(rng);
      return { label: `${type} (bad chat_id)`, frame: encode(frame) };
    }
    case 3: {
      // The right room, and a field that must be refused.
      frame.type = rng.pick(['message', 'join', 'edit', 'delete']);
      frame.chat_id = rng.pick<Json>([room, String(room)]);
      if (frame.type === 'message') frame.content = badContent(rng);
      else if (frame.type === 'join') frame.after = badCursor(rng);
      else frame.message_id = badId(rng);
      return { label: `${frame.type} (bad field)`, frame: encode(frame) };
    }
    case 4:
      // Unknown, missing or mistyped `type`.
      return {
        label: 'bad type',
        frame: encode({
          ...(rng.chance(0.8)
            ? {
                type: rng.pick<Json>([
                  'JOIN',
                  'Message',
                  'dance',
                  '',
                  ' join',
                  'join\u0000',
                  null,
                  1,
                  true,
                  ['join'],
                  { type: 'join' },
                  weirdString(rng, { maxLength: 100 }),
                ]),
              }
            : {}),
          chat_id: room,
          content: 'hello',
        }),
      };
    case 5:
      return { label: 'random JSON', frame: encode(randomJson(rng)) };
    case 6:
      return {
        label: 'not JSON',
        frame: rng.pick(['', ' ', '{', '{"type":', 'undefined', "{'type':'join'}", '{"type":"join",}', '\u0000', 'x'.repeat(60_000)]),
      };
    case 7: {
      // Deep nesting under 64 KiB (a frame over it closes the socket by design; tested apart).
      const depth = rng.pick([5_000, 20_000]);
      return {
        label: 'deeply nested',
        frame: rng.chance(0.5)
          ? '['.repeat(depth) + ']'.repeat(depth)
          : `{"type":"message","chat_id":${room},"content":${'['.repeat(depth)}${']'.repeat(depth)}}`,
      };
    }
    case 8:
      // A valid message but for invalid UTF-8 in its content, as a binary frame.
      return {
        label: 'binary frame with invalid UTF-8',
        frame: withInvalidUtf8(rng, encode({ type: 'message', chat_id: room, content: 'hello there' }), '"content":"hel'),
      };
    case 9:
      return { label: 'binary frame of random JSON', frame: new TextEncoder().encode(encode({ type, chat_id: badId(rng) })) };
    case 10: {
      // Sizes just under the cap.
      const content = 'x'.repeat(rng.pick([10_001, 40_000, 65_000]));
      return { label: 'large frame', frame: encode({ type: 'message', chat_id: room, content }) };
    }
    default:
      // A lone surrogate or NUL as JSON escapes (a client's text frame cannot carry a lone surrogate raw).
      return {
        label: 'escaped lone surrogate or NUL',
        frame: `{"type":"message","chat_id":${room},"content":"hi ${rng.pick(['\\ud800', '\\udfff', '\\u0000', '\\ud83d'])} there"}`,
      };
  }
}

// ---------------------------------------------------------------------------------------------

describe(`fuzz (FUZZ_SEED=${SEED})`, () => {
  test(
    `REST: ${REST_CASES} bad requests, no 5xx`,
    async () => {
      const rng = prng(SEED);
      const findings = new Findings();
      const statuses = new Map<number, number>();
      const labels = new Map<string, number>();
      let logged = errors.lines().length;
      for (let index = 0; index < REST_CASES; index++) {
        const kase = pickWeighted(rng, restGenerators)(rng);
        const input = `${kase.method} ${kase.path} [${kase.contentType ?? 'no content-type'}] ${bodyText(kase.body)}`;
        labels.set(kase.label, (labels.get(kase.label) ?? 0) + 1);
        let response: Response;
        try {
          response = await sendRest(kase);
        } catch (error) {
          findings.add(kase.label, `threw ${(error as Error).message}`, input);
          continue;
        }
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        const text = await response.text();
        if (errors.lines().length > logged) {
          findings.add(kase.label, `logged an unexpected error: ${lastError()}`, input);
          logged = errors.lines().length;
        }
        if (response.status >= 500) findings.add(kase.label, `status ${response.status} ${text.slice(0, 200)}`, input);
        // Reads may succeed (a good id with a good token); a write never may.
        else if (response.status === 200 && kase.method === 'POST') findings.add(kase.label, `accepted (200) ${text.slice(0, 200)}`, input);
        else if (response.status >= 400 && kase.method !== 'HEAD' && !(JSON.parse(text) as { detail?: unknown }).detail)
          findings.add(kase.label, `no detail in ${text.slice(0, 200)}`, input);
      }
      // One body over the 1 MiB cap, declared and undeclared.
      for (const declared of [true, false]) {
        const body = JSON.stringify({ content: 'x'.repeat(1_100_000) });
        const headers = new Headers({ 'content-type': 'application/json', authorization: `Bearer ${owner.token}` });
        const stream = new ReadableStream({ start: (controller) => (controller.enqueue(new TextEncoder().encode(body)), controller.close()) });
        const response = (await t.app.fetch(
          new Request(`http://test/api/chats/${room}/messages`, { method: 'POST', headers, body: declared ? body : stream }),
        ))!;
        if (response.status !== 413) findings.add('over 1 MiB', `status ${response.status}`, `${declared ? 'declared' : 'streamed'} ${body.length} bytes`);
      }
      if (VERBOSE) console.info('REST cases', Object.fromEntries(labels), 'statuses', Object.fromEntries(statuses));
      findings.assertNone('REST requests');
      expect([...statuses.keys()].every((status) => status < 500)).toBe(true);
    },
    TIMEOUT_MS,
  );

  test(
    `GraphQL: ${GRAPHQL_CASES} bad operations, no 5xx and no INTERNAL_SERVER_ERROR`,
    async () => {
      const rng = prng(SEED ^ 0x9e3779b9);
      const findings = new Findings();
      for (let index = 0; index < GRAPHQL_CASES; index++) {
        const kase = pickWeighted(rng, graphqlGenerators)(rng);
        const input = kase.get !== undefined ? `GET /graphql${kase.get}` : bodyText(kase.body);
        const logged = errors.lines().length;
        const response = await sendGraphql(kase);
        const text = await response.text();
        if (response.status >= 500) {
          findings.add(kase.label, `status ${response.status} ${text.slice(0, 200)}`, input);
          continue;
        }
        let body: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] };
        try {
          body = JSON.parse(text);
        } catch {
          // A refusal before GraphQL (415 for a content type it does not read) need not be JSON.
          if (response.status < 400) findings.add(kase.label, `status ${response.status}, not JSON: ${text.slice(0, 200)}`, input);
          continue;
        }
        // A read may succeed; a mutation never may (a 4xx refusal, such as 413, need not be GraphQL-shaped).
        if (response.status < 400 && !body.errors?.length && /mutation/.test(input)) findings.add(kase.label, `accepted: ${text.slice(0, 200)}`, input);
        const masked = (body.errors ?? []).filter((error) => error.extensions?.code === 'INTERNAL_SERVER_ERROR');
        if (masked.length === 0) continue;
        const causes = errors
          .lines()
          .slice(logged)
          .map((line) => `${line.msg} ${line.err?.message ?? ''}`);
        findings.add(kase.label, `INTERNAL_SERVER_ERROR; logged ${causes.join(' | ').slice(0, 300)}`, input);
      }
      findings.assertNone('GraphQL requests');
    },
    TIMEOUT_MS,
  );

  test(
    `/ws: ${WS_FRAMES} bad frames, each answered with an error frame, the socket open`,
    async () => {
      const rng = prng(SEED ^ 0x85ebca6b);
      const findings = new Findings();
      let logged = errors.lines().length;
      const socket = ownerSocket;
      const already = socket.frames.length;
      for (let index = 0; index < WS_FRAMES; index++) {
        let kase = badFrame(rng);
        // Frames over 64 KiB close the socket by design (tested apart): draw again.
        while ((typeof kase.frame === 'string' ? Buffer.byteLength(kase.frame) : kase.frame.length) > 65_000) kase = badFrame(rng);
        const input = typeof kase.frame === 'string' ? kase.frame : `<binary> ${new TextDecoder().decode(kase.frame)}`;
        socket.ws.send(kase.frame);
        let answer;
        try {
          answer = await socket.nextError();
        } catch (error) {
          findings.add(kase.label, (error as Error).message.slice(0, 300), input);
          break;
        }
        if (typeof answer.error !== 'string' || answer.error === 'Internal server error' || Object.keys(answer).length !== 2) {
          findings.add(kase.label, `answered ${JSON.stringify(answer).slice(0, 200)}`, input);
        }
        if (errors.lines().length > logged) {
          findings.add(kase.label, `logged an unexpected error: ${lastError()}`, input);
          logged = errors.lines().length;
        }
      }
      if (socket.isClosed()) findings.add('/ws', 'the socket closed', '');
      const unexpected = socket.frames.slice(already).filter((frame) => frame.type !== 'error');
      if (unexpected.length > 0) findings.add('/ws', `non-error frames arrived: ${JSON.stringify(unexpected).slice(0, 300)}`, '');
      findings.assertNone('/ws frames');
    },
    TIMEOUT_MS,
  );

  test('/ws: a frame over 64 KiB closes that socket with 1009, and only that socket', async () => {
    const big = kit.chat(owner.token);
    await big.opened;
    await big.sync();
    big.send({ type: 'message', chat_id: room, content: 'x'.repeat(64 * 1024) });
    expect((await big.closed).code).toBe(1009);
    expect(ownerSocket.isClosed()).toBe(false);
    await ownerSocket.sync();
  });

  test('nothing was stored, and the server still serves', async () => {
    expect(await counts()).toEqual(baseline);
    // Valid requests on every transport work after the barrage (and store exactly what they should).
    const rest = await t.request(`/api/chats/${room}/messages`, { method: 'POST', token: owner.token, json: { content: 'after the barrage (REST)' } });
    expect(rest.status).toBe(200);
    const graphql = await t.request('/graphql', {
      method: 'POST',
      token: owner.token,
      json: { query: 'mutation ($id: ID!) { sendMessage(chatId: $id, content: "after the barrage (GraphQL)") { id } }', variables: { id: room } },
    });
    expect(((await graphql.json()) as { errors?: unknown }).errors).toBeUndefined();
    ownerSocket.send({ type: 'message', chat_id: room, content: 'after the barrage (/ws)' });
    await ownerSocket.next((frame) => frame.type === 'message' && frame.content === 'after the barrage (/ws)');
    const login = await t.request('/api/auth/login', { method: 'POST', json: { username: owner.username, password: owner.password } });
    expect(login.status).toBe(200);
    expect(await counts()).toEqual({ ...baseline, messages: baseline.messages + 3 });
  });
});
