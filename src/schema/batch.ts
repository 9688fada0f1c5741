import { createContextCache } from '@pothos/core';
import { batched } from '../services/batched';
import type { Context } from './context';

/**
 * A per-request loader: the keys asked for during one turn of the event loop are loaded with one
 * `loadMany` call, so a list of N parents costs one load instead of N (see `batched`).
 * @example const activity = batchLoader((context, ids: number[]) => loadByIds(context, ids)); await activity(context)(id)
 */
export function batchLoader<K, V>(loadMany: (context: Context, keys: K[]) => Promise<Map<K, V>>) {
  return createContextCache((context: Context) => batched((keys: K[]) => loadMany(context, keys)));
}
