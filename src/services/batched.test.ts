import { expect, test } from 'bun:test';
import { batched, groupedBy } from './batched';

/** A loader over `known` that records each call's keys. */
function recording(known: Map<number, string>) {
  const calls: number[][] = [];
  const load = batched((keys: number[]) => {
    calls.push(keys);
    return Promise.resolve(new Map(keys.flatMap((key) => (known.has(key) ? [[key, known.get(key)!] as const] : []))));
  });
  return { load, calls };
}

test('callers of one turn share one load, each gets its own answer, a missing key gets undefined', async () => {
  const { load, calls } = recording(
    new Map([
      [1, 'one'],
      [2, 'two'],
    ]),
  );
  expect(await Promise.all([load(1), load(2), load(1), load(3)])).toEqual(['one', 'two', 'one', undefined]);
  expect(calls).toEqual([[1, 2, 3]]);
});

test('a caller after the batch was loaded starts a new load: no answer is remembered', async () => {
  const known = new Map([[1, 'one']]);
  const { load, calls } = recording(known);
  expect(await load(1)).toBe('one');
  known.set(1, 'uno');
  expect(await load(1)).toBe('uno');
  expect(calls).toEqual([[1], [1]]);
});

test('a burst over 500 keys is loaded in several calls of at most 500', async () => {
  const { load, calls } = recording(new Map(Array.from({ length: 1_200 }, (_, key) => [key, `#${key}`])));
  const answers = await Promise.all(Array.from({ length: 1_200 }, (_, key) => load(key)));
  expect(answers[1_199]).toBe('#1199');
  expect(calls.map((keys) => keys.length)).toEqual([500, 500, 200]);
});

test('a failed load rejects every caller of its batch, and the next batch loads again', async () => {
  let fail = true;
  const load = batched((keys: number[]) =>
    fail ? Promise.reject(new Error('database unreachable')) : Promise.resolve(new Map(keys.map((key) => [key, key * 2]))),
  );
  const failed = await Promise.all(
    [load(1), load(2)].map((answer) =>
      answer.then(
        () => null,
        (error: Error) => error.message,
      ),
    ),
  );
  expect(failed).toEqual(['database unreachable', 'database unreachable']);
  fail = false;
  expect(await load(2)).toBe(4);
});

test('groupedBy keeps each key with the values of its rows, in the rows’ order', () => {
  const rows = [
    { userId: 7, chatId: 4 },
    { userId: 2, chatId: 1 },
    { userId: 7, chatId: 1 },
  ];
  expect(
    groupedBy(
      rows,
      (row) => row.userId,
      (row) => row.chatId,
    ),
  ).toEqual(
    new Map([
      [7, [4, 1]],
      [2, [1]],
    ]),
  );
});
