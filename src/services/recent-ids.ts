/**
 * The last `capacity` ids added, each with its place in the order they came (0 for the first ever
 * added): adding one more forgets the oldest. Every operation is O(1). Forgetting the oldest by
 * deleting the front of a Map or Set is not, under Bun: its iterator walks past every slot deleted
 * before it, which cost a room a few microseconds a message. Here a ring holds the ids in order.
 * @example const delivered = new RecentIds(2048); delivered.add(messageId)
 */
export class RecentIds {
  /** Each id remembered, with its place. */
  private readonly places = new Map<number, number>();
  /** The ids by place, the place p at p % capacity; an id deleted or added again since keeps a stale slot. */
  private readonly ring: number[] = [];
  private added = 0;

  constructor(private readonly capacity: number) {}

  /** How many ids were ever added: the place the next one takes. */
  get count(): number {
    return this.added;
  }

  has(id: number): boolean {
    return this.places.has(id);
  }

  /** Adds `id` in the next place, unless it is remembered already. */
  add(id: number): void {
    if (this.places.has(id)) return;
    const slot = this.added % this.capacity;
    if (this.ring.length === this.capacity) {
      const oldest = this.ring[slot]!;
      // Only if that slot is still where the id stands: deleted and added again, it has a newer one.
      if (this.places.get(oldest) === this.added - this.capacity) this.places.delete(oldest);
    }
    this.ring[slot] = id;
    this.places.set(id, this.added++);
  }

  delete(id: number): void {
    this.places.delete(id);
  }

  /** The ids remembered that were added in place `place` or later. */
  since(place: number): Set<number> {
    const ids = new Set<number>();
    for (let at = Math.max(place, this.added - this.ring.length); at < this.added; at++) {
      const id = this.ring[at % this.capacity]!;
      if (this.places.get(id) === at) ids.add(id);
    }
    return ids;
  }
}
