import { expect, test } from 'bun:test';
import { isoTimestamp } from './serializers';

test('isoTimestamp is toISOString, whichever Date objects carry which times and in whatever order', () => {
  const times = [0, 1_765_000_000_123, 1_765_000_000_123, 1_765_000_000_124, 0, -1, 8.64e15];
  for (const time of times) {
    // A new object each time: only the time it holds counts, not which object it is.
    expect(isoTimestamp(new Date(time))).toBe(new Date(time).toISOString());
  }
  const shared = new Date(5);
  expect(isoTimestamp(shared)).toBe('1970-01-01T00:00:00.005Z');
  shared.setTime(6);
  expect(isoTimestamp(shared)).toBe('1970-01-01T00:00:00.006Z');
  expect(() => isoTimestamp(new Date(Number.NaN))).toThrow(RangeError);
});
