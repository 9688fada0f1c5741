import { mkdirSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Database } from '../../db/client';
import type { FileWindow } from './duration';
import { WINDOW_BYTES } from './duration';

/** A byte range of a stored file, both ends included (as HTTP's `Range` counts). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where uploaded files' bytes live, behind one interface: a folder on disk (one instance, or a
 * volume every instance mounts), or the database itself (instances sharing PostgreSQL). Files are
 * written and read as streams: neither side ever holds a whole file.
 */
export interface FileStore {
  /** Stores the chunks under `key`; on a throw (from the chunks or the store) nothing is left under it. */
  write(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** The file's bytes in `range` (the whole file without one), as a stream. */
  read(key: string, range: ByteRange | null): ReadableStream<Uint8Array>;
  /** Removes the files; keys that are not there are ignored. */
  delete(keys: string[]): Promise<void>;
}

/** A stored file of `size` bytes as a FileWindow: each read is one range of at most WINDOW_BYTES, never the whole file. */
export function storedFileWindow(store: FileStore, key: string, size: number): FileWindow {
  return {
    size,
    read: async (offset, length) => {
      const end = Math.min(size, offset + Math.min(length, WINDOW_BYTES)) - 1;
      if (offset < 0 || offset > end) return new Uint8Array();
      return new Uint8Array(await new Response(store.read(key, { start: offset, end })).arrayBuffer());
    },
  };
}

/** Keys are made by the server (uuids, with an optional `avatar-` prefix); anything else never reaches a path. */
const SAFE_KEY = /^[a-z-]*[0-9a-f-]{36}$/;
function checkedKey(key: string): string {
  if (!SAFE_KEY.test(key)) throw new Error(`unexpected file key ${JSON.stringify(key)}`);
  return key;
}

/** UPLOAD_DIR: one file per key; a file appears under its key only once wholly written. */
export class DiskFileStore implements FileStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async write(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const path = join(this.dir, checkedKey(key));
    const partial = `${path}.part`;
    const file = await open(partial, 'wx', 0o600);
    try {
      for await (const chunk of chunks) await file.write(chunk);
      await file.close();
      await rename(partial, path);
    } catch (error) {
      await file.close().catch(() => {});
      await rm(partial, { force: true });
      throw error;
    }
  }

  read(key: string, range: ByteRange | null): ReadableStream<Uint8Array> {
    const file = Bun.file(join(this.dir, checkedKey(key)));
    return (range ? file.slice(range.start, range.end + 1) : file).stream();
  }

  async delete(keys: string[]): Promise<void> {
    await Promise.all(keys.map((key) => rm(join(this.dir, checkedKey(key)), { force: true })));
  }
}

/** Bytes per row of `file_chunks`: every chunk but a file's last holds exactly this many, so a range maps to rows by arithmetic. */
export const DATABASE_CHUNK_BYTES = 256 * 1024;

/** The database as the store (PostgreSQL shared by several instances): a file is rows of DATABASE_CHUNK_BYTES. */
export class DatabaseFileStore implements FileStore {
  constructor(private readonly db: Database) {}

  async write(key: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    // Each row's bytes are copied once, into the row's own buffer, however the chunks fall.
    let row = new Uint8Array(DATABASE_CHUNK_BYTES);
    let filled = 0;
    let seq = 0;
    const flush = async (data: Uint8Array<ArrayBuffer>) => {
      await this.db.fileChunk.create({ data: { key, seq: seq++, data } });
    };
    try {
      for await (const chunk of chunks) {
        for (let at = 0; at < chunk.length;) {
          const taken = Math.min(chunk.length - at, DATABASE_CHUNK_BYTES - filled);
          row.set(chunk.subarray(at, at + taken), filled);
          filled += taken;
          at += taken;
          if (filled === DATABASE_CHUNK_BYTES) {
            await flush(row);
            row = new Uint8Array(DATABASE_CHUNK_BYTES);
            filled = 0;
          }
        }
      }
      if (filled > 0 || seq === 0) await flush(row.slice(0, filled));
    } catch (error) {
      await this.delete([key]);
      throw error;
    }
  }

  read(key: string, range: ByteRange | null): ReadableStream<Uint8Array> {
    const start = range?.start ?? 0;
    let seq = Math.floor(start / DATABASE_CHUNK_BYTES);
    let skip = start - seq * DATABASE_CHUNK_BYTES;
    let remaining = range ? range.end - range.start + 1 : Number.POSITIVE_INFINITY;
    // One row at a time, as the reader pulls: a slow client holds one chunk, never the file.
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const row = remaining > 0 ? await this.db.fileChunk.findUnique({ where: { key_seq: { key, seq } }, select: { data: true } }) : null;
        if (!row) return controller.close();
        seq += 1;
        const bytes = row.data.subarray(skip, skip + Math.min(remaining, row.data.length - skip));
        skip = 0;
        remaining -= bytes.length;
        controller.enqueue(bytes);
      },
    });
  }

  async delete(keys: string[]): Promise<void> {
    if (keys.length > 0) await this.db.fileChunk.deleteMany({ where: { key: { in: keys } } });
  }
}
