import { describe, expect, test } from 'bun:test';
import { delimiterStartAtEnd, dispositionParam, multipartBoundary, readFilePart } from './multipart';

/** A body delivered in chunks of `chunkSize` bytes, so delimiters fall across chunk edges. */
function chunked(text: string | Uint8Array, chunkSize: number): ReadableStream<Uint8Array> {
  const bytes = typeof text === 'string' ? new TextEncoder().encode(text) : text;
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunkSize));
      at += chunkSize;
    },
  });
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const chunk of body) parts.push(chunk);
  return Buffer.concat(parts).toString('latin1');
}

const TYPE = 'multipart/form-data; boundary=XyZ';
const body = [
  'preamble\r\n',
  '--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n',
  '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a %22b%22.txt"\r\nContent-Type: text/plain\r\n\r\n',
  'line one\r\n--XyNot a delimiter\r\nend',
  '\r\n--XyZ--\r\n',
].join('');

describe('readFilePart', () => {
  test.each([1, 2, 3, 7, 64, 4096])('finds the file part and streams it exactly, in chunks of %i bytes', async (size) => {
    const part = await readFilePart(chunked(body, size), TYPE);
    expect(part.filename).toBe('a "b".txt');
    expect(part.contentType).toBe('text/plain');
    expect(await collect(part.body)).toBe('line one\r\n--XyNot a delimiter\r\nend');
  });

  test('hands the file on in views of the chunks it arrived in, copying none of it', async () => {
    const file = new Uint8Array(3 * 4096).fill(0x61);
    // No preamble, as clients send it (one before the first delimiter is joined to the bytes after it).
    const input = chunked(
      Buffer.concat([Buffer.from(body.slice(body.indexOf('--XyZ'), body.indexOf('line one'))), file, Buffer.from('\r\n--XyZ--\r\n')]),
      4096,
    );
    const arrived = new Set<ArrayBufferLike>();
    const reader = input.getReader();
    const watched = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        arrived.add(value.buffer);
        controller.enqueue(value);
      },
    });
    const part = await readFilePart(watched, TYPE);
    let bytes = 0;
    for await (const chunk of part.body) {
      expect(arrived.has(chunk.buffer)).toBe(true);
      bytes += chunk.length;
    }
    expect(bytes).toBe(file.length);
  });

  test('a body ending in what may start a delimiter keeps just those bytes until the next chunk says', () => {
    expect(delimiterStartAtEnd(Buffer.from('data\r\n--Xy'), Buffer.from('\r\n--XyZ'))).toBe(6);
    expect(delimiterStartAtEnd(Buffer.from('data\r'), Buffer.from('\r\n--XyZ'))).toBe(1);
    expect(delimiterStartAtEnd(Buffer.from('data\r\n-x'), Buffer.from('\r\n--XyZ'))).toBe(0);
    expect(delimiterStartAtEnd(Buffer.from('\r\r\n'), Buffer.from('\r\n--XyZ'))).toBe(2);
  });

  test('refuses a body that is not multipart, has no file part, or ends early', async () => {
    expect(await readFilePart(chunked('x', 4), 'application/json').catch(String)).toContain('multipart/form-data');
    const noFile = chunked('--XyZ\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--XyZ--\r\n', 5);
    expect(await readFilePart(noFile, TYPE).catch(String)).toContain('No file in a part named "file"');
    const part = await readFilePart(chunked('--XyZ\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nunfinished', 5), TYPE);
    expect(await collect(part.body).catch(String)).toContain('ended early');
  });
});

test('multipartBoundary and dispositionParam read the headers as browsers write them', () => {
  expect(multipartBoundary('multipart/form-data; boundary="----a b"')).toBe('----a b');
  expect(multipartBoundary('multipart/form-data; boundary=----WebKitFormBoundary7')).toBe('----WebKitFormBoundary7');
  expect(multipartBoundary('text/plain; boundary=x')).toBeNull();
  expect(dispositionParam(`form-data; name="file"; filename="x.png"; filename*=UTF-8''%C3%A9t%C3%A9.png`, 'filename')).toBe('été.png');
  expect(dispositionParam('form-data; name=file; filename=plain.txt', 'filename')).toBe('plain.txt');
});
