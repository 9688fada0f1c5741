import { createContextCache } from '@pothos/core';
import type { Context } from './context';

/**
 * A per-request loader: the keys asked for during one turn of the event loop are loaded with one
 * `loadMany` call, so a list of N parents costs one load instead of N. Nothing is kept once a
 * batch is answered, so a subscription (one context for many events) never reads a stale answer.
 * @example const activity = batchLoader((context, ids: number[]) => loadByIds(context, ids)); await activity(context)(id)
 */
export function batchLoader<K, V>(loadMany: (context: Context, keys: K[]) => Promise<Map<K, V>>) {
  return createContextCache((context: Context) => {
    let batch: { keys: Set<K>; loaded: Promise<Map<K, V>> } | null = null;
    return (key: K): Promise<V | undefined> => {
      if (!batch) {
        const keys = new Set<K>();
        const loaded = new Promise<Map<K, V>>((resolve, reject) => {
          // Every sibling of a list resolves in this turn; the batch closes after it.
          setImmediate(() => {
            batch = null;
            loadMany(context, [...keys]).then(resolve, reject);
          });
        });
        batch = { keys, loaded };
      }
      batch.keys.add(key);
      return batch.loaded.then((values) => values.get(key));
    };
  });
}
