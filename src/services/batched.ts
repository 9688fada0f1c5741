/** Keys per `loadMany` call at most: a burst larger than this is loaded in several calls. */
const MAX_KEYS_PER_LOAD = 500;

/**
 * A loader whose callers in one turn of the event loop share one `loadMany` call: N callers cost one
 * query instead of N (a list's parents in GraphQL, a burst of sockets reconnecting after a deploy).
 * Nothing is remembered once a batch is answered, so no caller ever reads an answer older than its call.
 * @example const chatIds = batched((userIds: number[]) => loadChatIds(userIds)); await chatIds(userId)
 */
export function batched<K, V>(loadMany: (keys: K[]) => Promise<Map<K, V>>): (key: K) => Promise<V | undefined> {
  let open: { keys: Set<K>; loaded: Promise<Map<K, V>> } | null = null;
  return (key: K): Promise<V | undefined> => {
    if (!open || (open.keys.size >= MAX_KEYS_PER_LOAD && !open.keys.has(key))) {
      const keys = new Set<K>();
      const loaded = new Promise<Map<K, V>>((resolve, reject) => {
        // Every caller of this turn has asked by the time the check phase runs; the batch closes then.
        setImmediate(() => {
          if (open?.keys === keys) open = null;
          loadMany([...keys]).then(resolve, reject);
        });
      });
      open = { keys, loaded };
    }
    open.keys.add(key);
    return open.loaded.then((values) => values.get(key));
  };
}

/**
 * `rows` as a loader's answer: each key with the values of its rows, in the rows' order.
 * @example groupedBy(rows, (row) => row.userId, (row) => row.chatId) // Map { 7 => [1, 4] }
 */
export function groupedBy<R, K, V>(rows: R[], keyOf: (row: R) => K, valueOf: (row: R) => V): Map<K, V[]> {
  const groups = new Map<K, V[]>();
  for (const row of rows) {
    const key = keyOf(row);
    const values = groups.get(key);
    if (values) values.push(valueOf(row));
    else groups.set(key, [valueOf(row)]);
  }
  return groups;
}
