import { describe, expect, test } from 'bun:test';
import { dispositionParam, multipartBoundary, readFilePart } from './multipart';

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
