import { expect, test } from 'bun:test';
import { settleWithin } from './timeout';

test('settles with the work when it is in time', async () => {
  expect(await settleWithin(Promise.resolve('done'), 1_000, () => 'late')).toBe('done');
});

test('settles with onTimeout when the work hangs, or rejects with what it throws', async () => {
  const hung = new Promise<string>(() => {});
  expect(await settleWithin(hung, 1, () => 'late')).toBe('late');
  const failure = await settleWithin(hung, 1, () => {
    throw new Error('no answer');
  }).catch((error: unknown) => error);
  expect((failure as Error).message).toBe('no answer');
});
