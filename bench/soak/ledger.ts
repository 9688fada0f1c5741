import { readDatabase } from '../lib/api';

/** FNV-1a, 32 bits: tells a row's content from another's. Never 0, which marks "not acknowledged". */
function fingerprint(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash | 1;
}

export interface StoredCheck {
  acknowledged: number;
  /** Acknowledged ids found in the database with the content their echo carried. */
  stored: number;
  /** Acknowledged ids with no row. */
  missing: number[];
  /** Acknowledged ids whose row holds other content than the echo did. */
  mismatched: number[];
}

/**
 * Every message acknowledged to its sender (its echo came back with a `message_id`), by id: a dense
 * array of content fingerprints indexed by message id, so a long run costs 4 bytes a message and
 * the final check is one pass over the table.
 */
export class AckLedger {
  private fingerprints = new Int32Array(1 << 16);
  count = 0;
  /** The highest acknowledged id so far. */
  maxId = 0;

  /** Records an echo; false when that id was already acknowledged (a duplicate echo). */
  record(id: number, content: string): boolean {
    while (id >= this.fingerprints.length) {
      const bigger = new Int32Array(this.fingerprints.length * 2);
      bigger.set(this.fingerprints);
      this.fingerprints = bigger;
    }
    if (this.fingerprints[id] !== 0) return false;
    this.fingerprints[id] = fingerprint(content);
    this.count++;
    if (id > this.maxId) this.maxId = id;
    return true;
  }

  /** Reads every user message of the server's SQLite file and checks each acknowledged id against it. */
  verify(dbPath: string): StoredCheck {
    const found = new Uint8Array(this.maxId + 1);
    let stored = 0;
    const mismatched: number[] = [];
    readDatabase(dbPath, (db) => {
      for (const row of db
        .query<{ id: number; content: string }, [number]>('SELECT id, content FROM messages WHERE is_bot = 0 AND id <= ?')
        .iterate(this.maxId)) {
        const expected = this.fingerprints[row.id]!;
        if (expected === 0) continue;
        found[row.id] = 1;
        if (fingerprint(row.content) === expected) stored++;
        else mismatched.push(row.id);
      }
    });
    const missing: number[] = [];
    for (let id = 1; id <= this.maxId; id++) if (this.fingerprints[id] !== 0 && found[id] === 0) missing.push(id);
    return { acknowledged: this.count, stored, missing, mismatched };
  }
}
