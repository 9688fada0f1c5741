import { Database } from 'bun:sqlite';
import { afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leastSquaresSlope } from '../lib/stats';
import { DeliveryAudit } from './delivery-audit';
import { AckLedger } from './ledger';

// The soak's verdict rests on these checks: they must find what is missing, and only that.

let dir: string;
let dbPath: string;

/** A messages table with the columns the checks read, holding `rows`. */
function database(rows: { id: number; chatId?: number; content?: string; isBot?: boolean; status?: string }[]) {
  const db = new Database(dbPath);
  db.exec('CREATE TABLE messages (id INTEGER PRIMARY KEY, chat_id INTEGER NOT NULL, content TEXT NOT NULL, is_bot BOOLEAN NOT NULL, status TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO messages VALUES (?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (const row of rows) insert.run(row.id, row.chatId ?? 1, row.content ?? `m${row.id}`, row.isBot ? 1 : 0, row.status ?? 'complete');
  })();
  db.close();
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'soak-checks-'));
  dbPath = join(dir, 'soak.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('AckLedger', () => {
  test('finds acknowledged ids with no row, and rows with other content', () => {
    database([{ id: 1 }, { id: 2, content: 'not what was echoed' }, { id: 4 }]);
    const ledger = new AckLedger();
    for (const id of [1, 2, 3]) expect(ledger.record(id, `m${id}`)).toBe(true);
    expect(ledger.record(70_000, 'm70000')).toBe(true); // beyond the first allocation
    expect(ledger.record(1, 'm1')).toBe(false);
    expect(ledger.verify(dbPath)).toEqual({ acknowledged: 4, stored: 1, missing: [3, 70_000], mismatched: [2] });
  });
});

describe('DeliveryAudit', () => {
  test('counts the user messages a connection skipped, not bot answers nor what came before a live join', () => {
    database([{ id: 1 }, { id: 2 }, { id: 3, isBot: true }, { id: 4 }, { id: 5 }, { id: 6 }]);
    const audit = new DeliveryAudit();
    const live = audit.open(1, '/ws', null);
    for (const id of [2, 4, 6]) expect(live.receive(id, false)).toBe(true);
    const replayed = audit.open(1, '/ws', 1);
    for (const [id, isBot] of [
      [2, false],
      [3, true],
      [4, false],
      [5, false],
      [6, false],
    ] as const)
      replayed.receive(id, isBot);
    expect(replayed.receive(5, false)).toBe(false);
    expect(audit.verify(dbPath)).toEqual({ connections: 2, missed: 1, examples: ['/ws live room 1: 1 of (2, 6]'], missedBeyondLimit: 0 });
  });

  test('a replay may come after newer live messages: each counts once, in any order; a repeat does not', () => {
    database([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }, { id: 5 }]);
    const audit = new DeliveryAudit();
    const joined = audit.open(1, '/ws', 0);
    // Live before the join was read, then the replay of the older ones.
    expect([4, 5, 1, 2, 3].map((id) => joined.receive(id, false))).toEqual([true, true, true, true, true]);
    expect(joined.receive(2, false)).toBe(false);
    expect(audit.verify(dbPath)).toEqual({ connections: 1, missed: 0, examples: [], missedBeyondLimit: 0 });
  });

  test('a replay after a history gap skips what the gap names, and only that', () => {
    const rows = Array.from({ length: 1_100 }, (_, i) => ({ id: i + 1 }));
    database(rows);
    const audit = new DeliveryAudit();
    // The server says messages 1–100 are not replayed, then replays the newest 1,000.
    const connection = audit.open(1, '/ws', 0);
    connection.gap(101);
    for (let id = 101; id <= 1_100; id++) connection.receive(id, false);
    // Without the gap's word, the same frames owe 100 messages.
    const unannounced = audit.open(1, 'graphql-ws', 0);
    for (let id = 101; id <= 1_100; id++) unannounced.receive(id, false);
    expect(audit.verify(dbPath)).toEqual({ connections: 2, missed: 100, examples: ['graphql-ws after room 1: 100 of (0, 1100]'], missedBeyondLimit: 100 });
  });
});

test('leastSquaresSlope', () => {
  expect(
    leastSquaresSlope([
      { x: 0, y: 1 },
      { x: 1, y: 3 },
      { x: 2, y: 5 },
    ]),
  ).toBe(2);
  expect(leastSquaresSlope([{ x: 1, y: 1 }])).toBeNull();
  expect(
    leastSquaresSlope([
      { x: 1, y: 1 },
      { x: 1, y: 2 },
    ]),
  ).toBeNull();
});
