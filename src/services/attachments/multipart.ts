import { AppError } from '../errors';

/**
 * One file out of a `multipart/form-data` body, read as it arrives: the parts before it are skipped,
 * its bytes are handed on chunk by chunk, and nothing past the part's headers is ever buffered
 * beyond a delimiter's length. Bun's own `formData()` would hold the whole upload in memory.
 */

/** A part's headers larger than this are refused: real clients send a few hundred bytes. */
const MAX_HEADER_BYTES = 16 * 1024;
/** Preamble and fields before the file, together. */
const MAX_SKIPPED_BYTES = 64 * 1024;

export interface FilePart {
  /** The `filename` of its Content-Disposition, as sent; null when absent. */
  filename: string | null;
  /** The part's Content-Type, as claimed by the client. */
  contentType: string | null;
  /** Its bytes, in the chunks they arrived in. */
  body: AsyncIterable<Uint8Array>;
}

const badBody = (message: string) => new AppError('BAD_REQUEST', message);

/** The boundary of a `multipart/form-data` Content-Type, or null when the request is not one. */
export function multipartBoundary(contentType: string | null): string | null {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2] ?? null;
  return boundary && boundary.length <= 70 ? boundary : null;
}

/**
 * The first part named `field` that is a file. Throws BAD_REQUEST for a body that is not
 * multipart, is malformed, or has no such part.
 * @example const part = await readFilePart(request.body, request.headers.get('content-type'))
 */
export async function readFilePart(stream: ReadableStream<Uint8Array> | null, contentType: string | null, field = 'file'): Promise<FilePart> {
  const boundary = multipartBoundary(contentType);
  if (!boundary || !stream) throw badBody('Send the file as multipart/form-data, in a part named "file"');
  const reader = new ChunkReader(stream);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  let skipped = 0;
  // Clients start with the first delimiter; a preamble before it is skipped, with a CRLF in front so
  // that the first delimiter is found like every other one (joining it to the first chunk).
  if (!(await reader.skipIfNext(delimiter.subarray(2)))) {
    reader.prepend(new Uint8Array([13, 10]));
    for await (const chunk of reader.until(delimiter)) {
      skipped += chunk.length;
      if (skipped > MAX_SKIPPED_BYTES) throw badBody('Too much before the file part');
    }
  }
  for (;;) {
    const after = await reader.take(2);
    if (after === '--') break;
    if (after !== '\r\n') throw badBody('Malformed multipart body');
    const headers = parseHeaders(await reader.headerBlock());
    const disposition = headers.get('content-disposition') ?? '';
    if (dispositionParam(disposition, 'name') === field && /;\s*filename\*?=/i.test(disposition)) {
      return { filename: dispositionParam(disposition, 'filename'), contentType: headers.get('content-type') ?? null, body: reader.until(delimiter) };
    }
    for await (const chunk of reader.until(delimiter)) {
      skipped += chunk.length;
      if (skipped > MAX_SKIPPED_BYTES) throw badBody('Too much before the file part');
    }
  }
  throw badBody(`No file in a part named "${field}"`);
}

function parseHeaders(block: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** A parameter of a Content-Disposition header: RFC 5987's `name*=UTF-8''…` wins over the plain one. */
export function dispositionParam(header: string, name: string): string | null {
  const extended = new RegExp(`;\\s*${name}\\*=(?:UTF-8|utf-8)''([^;]*)`).exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[1]!.trim());
    } catch {
      return null;
    }
  }
  // Browsers (the WHATWG form encoding) send a backslash as is and percent-encode only `"`, CR and LF.
  const plain = new RegExp(`;\\s*${name}=(?:"([^"]*)"|([^;]*))`).exec(header);
  if (!plain) return null;
  return plain[1] !== undefined ? plain[1].replace(/%22/g, '"').replace(/%0D/gi, '\r').replace(/%0A/gi, '\n') : plain[2]!.trim();
}

/**
 * A stream read in pieces: up to a delimiter, a header block, or a few bytes. What it hands on are
 * views of the chunks as they arrived (Bun gives each chunk a buffer of its own and never reuses
 * it), never copies: an upload's bytes pass through without being copied on the way to the store.
 */
class ChunkReader {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  prepend(bytes: Uint8Array): void {
    this.buffer = Buffer.concat([bytes, this.buffer]);
  }

  /** Reads one more chunk into the buffer; false at the end of the stream. */
  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const { done, value } = await this.reader.read();
    if (done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    // Only a few bytes that may start a delimiter (or an unfinished header block) are ever joined to the next chunk.
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    return true;
  }

  /** Consumes `bytes` if the stream goes on with them; false (nothing consumed) otherwise, or when it ends first. */
  async skipIfNext(bytes: Uint8Array): Promise<boolean> {
    while (this.buffer.length < bytes.length) if (!(await this.fill())) return false;
    if (!this.buffer.subarray(0, bytes.length).equals(bytes)) return false;
    this.buffer = this.buffer.subarray(bytes.length);
    return true;
  }

  async take(count: number): Promise<string> {
    while (this.buffer.length < count) if (!(await this.fill())) throw badBody('The multipart body ended early');
    const taken = this.buffer.subarray(0, count).toString('latin1');
    this.buffer = this.buffer.subarray(count);
    return taken;
  }

  /** The headers up to the blank line that ends them (consumed), as text. */
  async headerBlock(): Promise<string> {
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end >= 0) {
        const block = this.buffer.subarray(0, end).toString('utf8');
        this.buffer = this.buffer.subarray(end + 4);
        return block;
      }
      if (this.buffer.length > MAX_HEADER_BYTES) throw badBody('Multipart part headers too large');
      if (!(await this.fill())) throw badBody('The multipart body ended early');
    }
  }

  /** The bytes up to `delimiter` (consumed, not yielded), as they arrive, in views of the chunks read. */
  async *until(delimiter: Buffer): AsyncGenerator<Uint8Array> {
    for (;;) {
      const found = this.buffer.indexOf(delimiter);
      if (found >= 0) {
        if (found > 0) yield this.buffer.subarray(0, found);
        this.buffer = this.buffer.subarray(found + delimiter.length);
        return;
      }
      // All but the bytes that may start a delimiter can go: usually all of them, so the next chunk needs no joining.
      const safe = this.buffer.length - delimiterStartAtEnd(this.buffer, delimiter);
      if (safe > 0) {
        yield this.buffer.subarray(0, safe);
        this.buffer = this.buffer.subarray(safe);
      }
      if (!(await this.fill())) throw badBody('The multipart body ended early');
    }
  }
}

/** How many bytes at the end of `bytes` are the start of `delimiter` (which `bytes` does not hold whole). */
export function delimiterStartAtEnd(bytes: Uint8Array, delimiter: Uint8Array): number {
  const first = delimiter[0]!;
  for (let at = Math.max(0, bytes.length - delimiter.length + 1); at < bytes.length; at++) {
    if (bytes[at] !== first) continue;
    let matches = true;
    for (let index = 1; at + index < bytes.length && matches; index++) matches = bytes[at + index] === delimiter[index];
    if (matches) return bytes.length - at;
  }
  return 0;
}
