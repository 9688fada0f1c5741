/**
 * Local stand-in for the Gemini REST API (`streamGenerateContent?alt=sse`), speaking the wire
 * format `@google/genai` expects. For tests and benchmarks only — it never touches the network.
 *
 * In-process:  `const fake = await startFakeGemini();
 *               new GoogleGenAI({ apiKey: fake.apiKey, httpOptions: { baseUrl: fake.url } })`
 * Standalone:  `bun test/support/fake-gemini.ts --port 8787 --chunks 500 --chunk-delay-ms 0 [--api-key K]`
 *              prints `listening on http://127.0.0.1:8787`; every request gets `--chunks` deltas "tok<i> ".
 */
import { parseArgs } from 'node:util';

/** What the fake answers to the next request. */
export type FakeGeminiReply =
  /**
   * Streams each chunk as a text delta; the last frame carries finishReason STOP + usageMetadata. With `holdAt`, the
   * first `holdAt` chunks go out and the rest wait for the request's `release()`, so a test decides when the answer
   * goes on. `delayMs` paces the chunks for benchmarks; tests hold and release instead of timing.
   */
  | { kind: 'text'; chunks: string[]; holdAt?: number; delayMs?: number; grounding?: FakeGroundingSource[] }
  /** Answers an HTTP error with Gemini's JSON error body, before any stream. */
  | { kind: 'http-error'; status: number; message: string }
  /**
   * Sends the chunks, then resets the connection (no finishReason, truncated chunked body) when the test calls the
   * request's `drop()`. Drop only once the client has read the chunks (e.g. the deltas it published): Bun's fetch
   * throws away body bytes the client had received but not yet read when the socket resets.
   */
  | { kind: 'fail-mid-stream'; chunks: string[] }
  /** Accepts the request and never sends anything, not even headers, until the client aborts or the fake stops. */
  | { kind: 'hang' }
  /** Sends the chunks (200 + SSE frames), then goes silent until the client aborts or the fake stops. */
  | { kind: 'hang-after'; chunks: string[] }
  /** A prompt block: a single frame with `promptFeedback.blockReason = "SAFETY"` and no candidates. */
  | { kind: 'safety-block' }
  /** 200 text/event-stream whose data lines are not JSON. */
  | { kind: 'garbage' };

/**
 * A web source of a grounded answer (Google Search grounding): the last frame's candidate carries
 * them as the real API does, `groundingMetadata.groundingChunks[].web.{uri, title}`.
 */
export interface FakeGroundingSource {
  uri: string;
  title: string;
}

/** A reply, or a function choosing one from the request it answers. */
export type FakeGeminiReplySource = FakeGeminiReply | ((req: FakeGeminiRequest) => FakeGeminiReply);

/** One request received by the fake. */
export interface FakeGeminiRequest {
  /** Model id from the URL path, e.g. "gemini-2.5-flash". */
  model: string;
  /** The `x-goog-api-key` header (or `?key=`), null when absent. */
  apiKey: string | null;
  /** Parsed JSON body (`contents`, `systemInstruction`, `generationConfig`, ...); null if it was not JSON. */
  body: any;
  /** Flips to true when the client aborted / closed the connection before the reply was complete. */
  aborted: boolean;
  /** Resolves when the exchange is over: reply fully sent, connection dropped by the fake, client gone, or fake stopped. */
  closed: Promise<void>;
  /** Lets a `text` reply held at `holdAt` send the rest. */
  release(): void;
  /** Resets a `fail-mid-stream` reply's connection once its chunks are sent. */
  drop(): void;
}

export interface FakeGemini {
  /** Base URL to pass as the SDK's `httpOptions.baseUrl`, e.g. http://127.0.0.1:PORT */
  url: string;
  /** The only key it accepts; a missing key gets 403, a wrong one 400 (as real Gemini does). */
  apiKey: string;
  /** Every request received, in order — including rejected ones. */
  requests: FakeGeminiRequest[];
  /** Queues a reply (FIFO) for the next authorised request; when the queue is empty the default is used. */
  reply(next: FakeGeminiReplySource): void;
  /** Replaces the default reply (initially: text echo of the last user turn, chunks ["Echo: ", text]). */
  setDefault(reply: FakeGeminiReplySource): void;
  /** Resolves with the next request to arrive after this call. */
  nextRequest(): Promise<FakeGeminiRequest>;
  /** Closes the server and every open connection; pending hangs end. */
  stop(): Promise<void>;
}

export const DEFAULT_FAKE_GEMINI_API_KEY = 'fake-gemini-key';
const ROUTE = /^\/v1(?:beta)?\/models\/([^/:]+):streamGenerateContent$/;
const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'NOT_IMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

const encoder = new TextEncoder();
const frame = (data: unknown): Uint8Array => encoder.encode(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\r\n\r\n`);

function errorResponse(status: number, message: string, details?: unknown[]): Response {
  const error = { code: status, message, status: STATUS_NAMES[status] ?? 'UNKNOWN', ...(details && { details }) };
  return Response.json({ error }, { status });
}

function textOf(content: unknown): string {
  const parts = (content as { parts?: { text?: unknown }[] } | undefined)?.parts ?? [];
  return parts.map((p) => (typeof p.text === 'string' ? p.text : '')).join('');
}

/** The inline data types Gemini documents for images, audio and documents. */
export const GEMINI_INLINE_TYPES = new Set([
  'image/png',
  'image/jpeg',
  'image/webp',
  'image/heic',
  'image/heif',
  'audio/wav',
  'audio/mp3',
  'audio/aiff',
  'audio/aac',
  'audio/ogg',
  'audio/flac',
  'application/pdf',
  'text/plain',
]);
/** Gemini's cap on a request's inline data. */
export const GEMINI_INLINE_LIMIT_BYTES = 20 * 1024 * 1024;

/**
 * What real Gemini refuses with 400 in `contents`: a role other than user/model, turns that do not
 * alternate or start with the user, an empty turn, a part that is not exactly one of text and
 * inlineData, inline data of a type it does not read, not base64 or empty, or over 20 MB in all.
 */
function invalidContents(contents: any[]): string | null {
  let inlineBytes = 0;
  for (const [index, content] of contents.entries()) {
    const where = `* GenerateContentRequest.contents[${index}]`;
    if (content?.role !== 'user' && content?.role !== 'model') return `${where}.role: must be user or model`;
    if (index === 0 && content.role !== 'user') return `${where}: the conversation must start with a user turn`;
    if (index > 0 && contents[index - 1].role === content.role) return `${where}: roles must alternate between user and model`;
    if (!Array.isArray(content.parts) || content.parts.length === 0) return `${where}.parts: contents.parts must not be empty`;
    for (const [at, part] of (content.parts as any[]).entries()) {
      const fields = Object.keys(part ?? {}).filter((key) => key === 'text' || key === 'inlineData');
      if (fields.length !== 1) return `${where}.parts[${at}]: exactly one of text or inlineData must be set`;
      if (fields[0] === 'text' && typeof part.text !== 'string') return `${where}.parts[${at}].text: must be a string`;
      if (fields[0] === 'inlineData') {
        const { mimeType, data } = part.inlineData ?? {};
        if (!GEMINI_INLINE_TYPES.has(mimeType)) return `${where}.parts[${at}].inline_data.mime_type: Unsupported MIME type: ${String(mimeType)}`;
        if (typeof data !== 'string' || data.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0) {
          return `${where}.parts[${at}].inline_data.data: Invalid value (bytes): base64 decoding failed`;
        }
        inlineBytes += (data.length / 4) * 3 - (data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0);
      }
    }
  }
  if (inlineBytes > GEMINI_INLINE_LIMIT_BYTES) return `Request payload size exceeds the limit: ${GEMINI_INLINE_LIMIT_BYTES} bytes.`;
  return null;
}

/** Default reply: echoes the last user turn. */
function echoReply(req: FakeGeminiRequest): FakeGeminiReply {
  const contents: unknown[] = Array.isArray(req.body?.contents) ? req.body.contents : [];
  const lastUser = contents.findLast((c) => (c as { role?: string }).role !== 'model');
  return { kind: 'text', chunks: ['Echo: ', textOf(lastUser)] };
}

const tokens = (text: string) => Math.ceil(text.length / 4);

/** A request's two test-driven events: `release()` (a held reply goes on) and `drop()` (the connection resets). */
class Control {
  release!: () => void;
  drop!: () => void;
  readonly released = new Promise<void>((resolve) => (this.release = resolve));
  readonly dropped = new Promise<void>((resolve) => (this.drop = resolve));
}

export async function startFakeGemini(options: { apiKey?: string; port?: number } = {}): Promise<FakeGemini> {
  const apiKey = options.apiKey ?? DEFAULT_FAKE_GEMINI_API_KEY;
  const requests: FakeGeminiRequest[] = [];
  const queue: FakeGeminiReplySource[] = [];
  let fallback: FakeGeminiReplySource = echoReply;
  let waiters: ((req: FakeGeminiRequest) => void)[] = [];
  /** Ends every exchange still open (hangs, slow streams) when the fake stops. */
  const open = new Set<() => void>();

  /**
   * Ties an exchange's lifecycle to the client's abort signal and to stop(); `end` settles it once
   * (`req.aborted` records whether the client went away first) and runs `onEnd`.
   */
  function track(req: FakeGeminiRequest, signal: AbortSignal, onEnd?: () => void) {
    let ended = false;
    let settle!: () => void;
    req.closed = new Promise<void>((resolve) => (settle = resolve));
    const end = (aborted: boolean) => {
      if (ended) return;
      ended = true;
      req.aborted = aborted;
      open.delete(onStop);
      signal.removeEventListener('abort', onAbort);
      onEnd?.();
      settle();
    };
    const onStop = () => end(false);
    const onAbort = () => end(true);
    open.add(onStop);
    signal.addEventListener('abort', onAbort);
    return { end, ended: () => ended };
  }

  /**
   * An SSE response sending `frames` (`delayMs` apart, the rest held after `holdAt` until `released`), then closing,
   * dropping the connection once `dropped`, or hanging.
   */
  function stream(
    req: FakeGeminiRequest,
    signal: AbortSignal,
    frames: Uint8Array[],
    then: 'close' | 'drop' | 'hang',
    gates: { holdAt?: number; released?: Promise<void>; dropped?: Promise<void>; delayMs?: number } = {},
  ): Response {
    const exchange = track(req, signal);
    let next = 0;
    // Every wait also ends when the exchange does (client gone, fake stopped).
    const until = (event: Promise<void> | undefined) => Promise.race([event, req.closed]);
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (next === gates.holdAt) await until(gates.released);
        else if (next > 0 && next < frames.length && gates.delayMs) await Bun.sleep(gates.delayMs);
        if (exchange.ended()) return;
        if (next < frames.length) return controller.enqueue(frames[next++]);
        if (then === 'hang') return req.closed; // stay silent until the client leaves or the fake stops
        if (then === 'close') return void (exchange.end(false), controller.close());
        // Drop: erroring the body resets the socket. A falsy reason keeps Bun from logging the error.
        await until(gates.dropped);
        if (exchange.ended()) return;
        exchange.end(false);
        controller.error(undefined);
      },
      cancel: () => exchange.end(true),
    });
    return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } });
  }

  function answer(req: FakeGeminiRequest, signal: AbortSignal, reply: FakeGeminiReply, control: Control): Response | Promise<Response> {
    const model = req.model;
    const delta = (text: string) => ({
      candidates: [{ content: { parts: [{ text }], role: 'model' }, index: 0 }],
      modelVersion: model,
    });
    const prompt = tokens(((req.body?.contents ?? []) as unknown[]).map(textOf).join(''));
    switch (reply.kind) {
      case 'text': {
        const chunks = reply.chunks.length ? reply.chunks : [''];
        const out = tokens(chunks.join(''));
        const frames = chunks.map((text, i) => {
          if (i < chunks.length - 1) return frame(delta(text));
          const last = delta(text);
          const grounding = reply.grounding && {
            groundingMetadata: {
              webSearchQueries: ['search'],
              groundingChunks: reply.grounding.map((web) => ({ web })),
              groundingSupports: reply.grounding.map((_, index) => ({ segment: { startIndex: 0, endIndex: 1, text }, groundingChunkIndices: [index] })),
            },
          };
          return frame({
            ...last,
            candidates: [{ ...last.candidates[0], finishReason: 'STOP', ...grounding }],
            usageMetadata: { promptTokenCount: prompt, candidatesTokenCount: out, totalTokenCount: prompt + out },
          });
        });
        return stream(req, signal, frames, 'close', { holdAt: reply.holdAt, released: control.released, delayMs: reply.delayMs });
      }
      case 'fail-mid-stream':
        return stream(
          req,
          signal,
          reply.chunks.map((t) => frame(delta(t))),
          'drop',
          { dropped: control.dropped },
        );
      case 'hang-after':
        return stream(
          req,
          signal,
          reply.chunks.map((t) => frame(delta(t))),
          'hang',
        );
      case 'safety-block':
        return stream(
          req,
          signal,
          [
            frame({
              promptFeedback: { blockReason: 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_HARASSMENT', probability: 'HIGH', blocked: true }] },
              usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt },
              modelVersion: model,
            }),
          ],
          'close',
        );
      case 'garbage':
        return stream(req, signal, [frame('this is not json'), frame('{"candidates": [')], 'close');
      case 'http-error':
        return errorResponse(reply.status, reply.message);
      case 'hang':
        return new Promise<Response>((resolve) => track(req, signal, () => resolve(new Response(null, { status: 499 }))));
    }
  }

  const server = Bun.serve({
    port: options.port ?? 0,
    hostname: '127.0.0.1',
    idleTimeout: 0, // hangs must last until the client gives up
    async fetch(httpReq) {
      const url = new URL(httpReq.url);
      const route = ROUTE.exec(url.pathname);
      const text = await httpReq.text();
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: the request is recorded with a null body and answered as the real API would.
      }
      const control = new Control();
      const req: FakeGeminiRequest = {
        model: decodeURIComponent(route?.[1] ?? ''),
        apiKey: httpReq.headers.get('x-goog-api-key') ?? url.searchParams.get('key'),
        body,
        aborted: false,
        closed: Promise.resolve(),
        release: control.release,
        drop: control.drop,
      };
      requests.push(req);
      const notify = waiters;
      waiters = [];
      for (const w of notify) w(req);

      if (!route || httpReq.method !== 'POST') return errorResponse(404, `Method not found: ${httpReq.method} ${url.pathname}`);
      if (req.apiKey === null) {
        return errorResponse(
          403,
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        );
      }
      if (req.apiKey !== apiKey) {
        return errorResponse(400, 'API key not valid. Please pass a valid API key.', [
          { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' },
        ]);
      }
      if (body === null) return errorResponse(400, `Invalid JSON payload received. Unexpected token.`);
      if (!Array.isArray(req.body.contents) || req.body.contents.length === 0) {
        return errorResponse(400, '* GenerateContentRequest.contents: contents is not specified');
      }
      const invalid = invalidContents(req.body.contents);
      if (invalid) return errorResponse(400, invalid);
      const source = queue.shift() ?? fallback;
      return answer(req, httpReq.signal, typeof source === 'function' ? source(req) : source, control);
    },
  });

  return {
    url: `http://127.0.0.1:${server.port}`,
    apiKey,
    requests,
    reply: (next) => void queue.push(next),
    setDefault: (reply) => void (fallback = reply),
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    async stop() {
      for (const end of [...open]) end();
      await server.stop(true);
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      chunks: { type: 'string', default: '100' },
      'chunk-delay-ms': { type: 'string', default: '0' },
      'api-key': { type: 'string' },
    },
  });
  const [port, count, delayMs] = [values.port, values.chunks, values['chunk-delay-ms']].map(Number) as [number, number, number];
  if (![port, count, delayMs].every((n) => Number.isInteger(n) && n >= 0)) throw new Error('--port, --chunks and --chunk-delay-ms take non-negative integers');
  const fake = await startFakeGemini({ port, apiKey: values['api-key'] });
  const reply: FakeGeminiReply = { kind: 'text', chunks: Array.from({ length: count }, (_, i) => `tok${i} `), delayMs };
  // Nobody reads the request log in a benchmark: keep memory flat.
  fake.setDefault(() => ((fake.requests.length = 0), reply));
  console.log(`listening on ${fake.url}`);
}
