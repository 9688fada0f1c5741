/**
 * A map that cannot outgrow `maxEntries`, each entry read as absent (and dropped) once it is
 * `ttlMs` old. Entries live in two generations: new and recently read ones go to the young one,
 * and when it is half the bound the old generation is dropped whole and the young one takes its
 * place. So what goes first is the half least recently used, and every operation is O(1): evicting
 * one entry at a time from the front of a Map is not, under Bun (its iterator walks past every
 * deleted slot, which made a million evictions take minutes).
 * @example const users = new LruCache<number, User>(10_000, 60_000)
 */
export class LruCache<K, V> {
  private young = new Map<K, { value: V; expiresAt: number }>();
  private old = new Map<K, { value: V; expiresAt: number }>();
  private readonly generationSize: number;

  constructor(
    maxEntries: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.generationSize = Math.max(1, Math.floor(maxEntries / 2));
  }

  get(key: K): V | undefined {
    const young = this.young.get(key);
    if (young) {
      if (young.expiresAt > this.now()) return young.value;
      this.young.delete(key);
      return undefined;
    }
    const old = this.old.get(key);
    if (!old) return undefined;
    this.old.delete(key);
    if (old.expiresAt <= this.now()) return undefined;
    this.insert(key, old);
    return old.value;
  }

  /** Stores `value` for `key`, its age counted from now. */
  set(key: K, value: V): void {
    this.old.delete(key);
    this.insert(key, { value, expiresAt: this.now() + this.ttlMs });
  }

  delete(key: K): void {
    this.young.delete(key);
    this.old.delete(key);
  }

  /** Drops every entry `matches` picks; it visits them all, so it is for rare invalidations. */
  deleteWhere(matches: (key: K, value: V) => boolean): void {
    for (const generation of [this.young, this.old]) {
      for (const [key, entry] of generation) if (matches(key, entry.value)) generation.delete(key);
    }
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private insert(key: K, entry: { value: V; expiresAt: number }): void {
    if (!this.young.has(key) && this.young.size >= this.generationSize) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, entry);
  }
}
