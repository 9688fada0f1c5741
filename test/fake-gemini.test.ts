import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { ApiError, BlockedReason, FinishReason, GoogleGenAI, type GenerateContentResponse } from '@google/genai';
import { DEFAULT_FAKE_GEMINI_API_KEY, startFakeGemini, type FakeGemini } from './support/fake-gemini';

const MODEL = 'gemini-2.5-flash';
let fake: FakeGemini;
let ai: GoogleGenAI;

beforeAll(async () => {
  fake = await startFakeGemini();
  ai = new GoogleGenAI({ apiKey: fake.apiKey, httpOptions: { baseUrl: fake.url } });
});
afterAll(() => fake.stop());

function generate(client: GoogleGenAI, text: string, abortSignal?: AbortSignal) {
  return client.models.generateContentStream({
    model: MODEL,
    contents: [{ role: 'user', parts: [{ text }] }],
    config: { systemInstruction: 'Be brief.', abortSignal },
  });
}

/** Drains a stream, returning the chunks received before it ended or threw. */
async function drain(stream: AsyncGenerator<GenerateContentResponse>) {
  const chunks: GenerateContentResponse[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk);
    return { chunks, error: undefined };
  } catch (error) {
    return { chunks, error };
  }
}

const texts = (chunks: GenerateContentResponse[]) => chunks.map((c) => c.text ?? '');

describe('fake Gemini via @google/genai', () => {
  test('streams text deltas and records the request', async () => {
    fake.reply({ kind: 'text', chunks: ['Hel', 'lo', ' world'] });
    const received = fake.nextRequest();
    const { chunks, error } = await drain(
      await ai.models.generateContentStream({
        model: MODEL,
        contents: [
          { role: 'user', parts: [{ text: 'hi' }] },
          { role: 'model', parts: [{ text: 'hey' }] },
          { role: 'user', parts: [{ text: 'greet me' }] },
        ],
        config: { systemInstruction: 'Be brief.', temperature: 0.5 },
      }),
    );
    expect(error).toBeUndefined();
    expect(texts(chunks)).toEqual(['Hel', 'lo', ' world']);
    const last = chunks.at(-1)!;
    expect(last.candidates?.[0]?.finishReason).toBe(FinishReason.STOP);
    expect(last.usageMetadata?.totalTokenCount).toBeGreaterThan(0);

    const req = await received;
    expect(req).toBe(fake.requests.at(-1)!);
    expect(req.model).toBe(MODEL);
    expect(req.apiKey).toBe(fake.apiKey);
    expect(req.body.contents).toEqual([
      { role: 'user', parts: [{ text: 'hi' }] },
      { role: 'model', parts: [{ text: 'hey' }] },
      { role: 'user', parts: [{ text: 'greet me' }] },
    ]);
    expect(req.body.systemInstruction.parts).toEqual([{ text: 'Be brief.' }]);
    expect(req.body.generationConfig).toEqual({ temperature: 0.5 });
    await req.closed;
    expect(req.aborted).toBe(false);
  });

  test('default reply echoes the last user turn; setDefault and reply functions see the request', async () => {
    expect(texts((await drain(await generate(ai, 'ping'))).chunks).join('')).toBe('Echo: ping');

    fake.reply((req) => ({ kind: 'text', chunks: [`model=${req.model}`] }));
    expect(texts((await drain(await generate(ai, 'x'))).chunks).join('')).toBe(`model=${MODEL}`);

    const other = await startFakeGemini({ apiKey: 'other-key' });
    try {
      other.setDefault({ kind: 'text', chunks: ['fixed'] });
      const client = new GoogleGenAI({ apiKey: 'other-key', httpOptions: { baseUrl: other.url } });
      expect(texts((await drain(await generate(client, 'a'))).chunks)).toEqual(['fixed']);
      expect(texts((await drain(await generate(client, 'b'))).chunks)).toEqual(['fixed']);
      expect(other.requests.map((r) => r.body.contents[0].parts[0].text)).toEqual(['a', 'b']);
    } finally {
      await other.stop();
    }
  });

  test('http-error rejects with an ApiError carrying the status before iteration', async () => {
    fake.reply({ kind: 'http-error', status: 429, message: 'Resource has been exhausted (e.g. check quota).' });
    const error = await generate(ai, 'hi').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(429);
    expect(JSON.parse((error as ApiError).message)).toEqual({
      error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' },
    });
  });

  test('fail-mid-stream yields the chunks, then throws during iteration once the test drops the connection', async () => {
    fake.reply({ kind: 'fail-mid-stream', chunks: ['par', 'tial'] });
    const received = fake.nextRequest();
    const stream = await generate(ai, 'hi');
    const req = await received;
    const chunks: GenerateContentResponse[] = [];
    const error = await (async () => {
      try {
        for await (const chunk of stream) {
          chunks.push(chunk);
          if (chunks.length === 2) req.drop(); // both read: nothing received is lost to the reset
        }
      } catch (e) {
        return e;
      }
    })();
    expect(texts(chunks)).toEqual(['par', 'tial']);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(ApiError);
    expect(chunks.some((c) => c.candidates?.[0]?.finishReason)).toBe(false);
    await req.closed;
    expect(req.aborted).toBe(false);
  });

  test('text with holdAt sends that many chunks, then the rest once the test releases it', async () => {
    fake.reply({ kind: 'text', chunks: ['one ', 'two ', 'three'], holdAt: 1 });
    const received = fake.nextRequest();
    const stream = await generate(ai, 'hi');
    const req = await received;
    const first = await stream.next();
    expect(first.value?.text).toBe('one ');
    req.release();
    const { chunks, error } = await drain(stream);
    expect(error).toBeUndefined();
    expect(texts(chunks)).toEqual(['two ', 'three']);
    expect(chunks.at(-1)!.candidates?.[0]?.finishReason).toBe(FinishReason.STOP);
    await req.closed;
    expect(req.aborted).toBe(false);
  });

  test('hang: aborting the signal rejects the call and marks the request aborted', async () => {
    fake.reply({ kind: 'hang' });
    const controller = new AbortController();
    const received = fake.nextRequest();
    const call = generate(ai, 'hi', controller.signal).catch((e: unknown) => e);
    const req = await received;
    expect(req.aborted).toBe(false);
    controller.abort();
    expect(((await call) as Error).name).toBe('AbortError');
    await req.closed;
    expect(req.aborted).toBe(true);
  });

  test('hang-after: chunks arrive, then aborting mid-stream marks the request aborted', async () => {
    fake.reply({ kind: 'hang-after', chunks: ['one', 'two'] });
    const controller = new AbortController();
    const received = fake.nextRequest();
    const stream = await generate(ai, 'hi', controller.signal);
    const req = await received;
    const seen: string[] = [];
    const error = await (async () => {
      try {
        for await (const chunk of stream) {
          seen.push(chunk.text ?? '');
          if (seen.length === 2) controller.abort();
        }
      } catch (e) {
        return e;
      }
    })();
    expect(seen).toEqual(['one', 'two']);
    expect((error as Error).name).toBe('AbortError');
    await req.closed;
    expect(req.aborted).toBe(true);
  });

  test('safety-block surfaces as promptFeedback.blockReason with no text', async () => {
    fake.reply({ kind: 'safety-block' });
    const { chunks, error } = await drain(await generate(ai, 'something bad'));
    expect(error).toBeUndefined();
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.promptFeedback?.blockReason).toBe(BlockedReason.SAFETY);
    expect(chunks[0]!.text).toBeUndefined();
  });

  test('garbage data lines throw during iteration', async () => {
    fake.reply({ kind: 'garbage' });
    const { chunks, error } = await drain(await generate(ai, 'hi'));
    expect(chunks).toHaveLength(0);
    expect(error).toBeInstanceOf(Error);
  });

  test('wrong or missing API key is rejected with a Gemini error', async () => {
    const wrong = new GoogleGenAI({ apiKey: 'nope', httpOptions: { baseUrl: fake.url } });
    const error = await generate(wrong, 'hi').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).message).toContain('API key not valid');
    expect(fake.requests.at(-1)!.apiKey).toBe('nope');

    const res = await fetch(`${fake.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, {
      method: 'POST',
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { status: string } }).error.status).toBe('PERMISSION_DENIED');
  });

  test('a queued reply is not consumed by a rejected request', async () => {
    fake.reply({ kind: 'text', chunks: ['kept'] });
    const wrong = new GoogleGenAI({ apiKey: 'nope', httpOptions: { baseUrl: fake.url } });
    await generate(wrong, 'hi').catch(() => undefined);
    expect(texts((await drain(await generate(ai, 'hi'))).chunks)).toEqual(['kept']);
  });

  test('stop() ends hanging exchanges', async () => {
    const local = await startFakeGemini();
    local.setDefault({ kind: 'hang' });
    const client = new GoogleGenAI({ apiKey: local.apiKey, httpOptions: { baseUrl: local.url } });
    const received = local.nextRequest();
    const call = generate(client, 'hi').catch((e: unknown) => e);
    const req = await received;
    await local.stop();
    await req.closed;
    expect(req.aborted).toBe(false);
    expect(await call).toBeInstanceOf(Error);
  });

  test('runs standalone for benchmarks', async () => {
    const proc = Bun.spawn([process.execPath, `${import.meta.dir}/support/fake-gemini.ts`, '--port', '0', '--chunks', '3'], {
      stdout: 'pipe',
    });
    try {
      const { value } = await proc.stdout.getReader().read();
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(new TextDecoder().decode(value))?.[1];
      expect(url).toBeDefined();
      const client = new GoogleGenAI({ apiKey: DEFAULT_FAKE_GEMINI_API_KEY, httpOptions: { baseUrl: url } });
      expect(texts((await drain(await generate(client, 'hi'))).chunks)).toEqual(['tok0 ', 'tok1 ', 'tok2 ']);
    } finally {
      proc.kill();
      await proc.exited;
    }
  });
});
