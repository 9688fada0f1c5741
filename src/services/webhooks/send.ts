import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Resolver } from './address-safety';
import { pickSafeAddress, RefusedAddressError, refusedUrl } from './address-safety';

/** At most this much of a receiver's answer is read (for the deliveries list); the rest is dropped unread. */
export const RESPONSE_READ_LIMIT = 1024;

export const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

export type SendOutcome =
  /** The receiver answered: `status` and the start of its body. */
  | { kind: 'answered'; status: number; body: string }
  /** No answer: a timeout, a refused connection, a TLS failure. */
  | { kind: 'unreachable'; error: string }
  /** Not sent: the URL or the address it resolved to is not allowed. */
  | { kind: 'refused'; error: string };

export interface SendOptions {
  allowPrivate: boolean;
  timeoutMs: number;
  resolve: Resolver;
  /** Aborts the attempt (the app is stopping). */
  signal: AbortSignal;
}

/**
 * POSTs `body` to `url` once: redirects are not followed, the connection goes to an address checked
 * at connection time (the lookup itself refuses private ones, so no second lookup can swap it), the
 * whole attempt is bounded by `timeoutMs`, and at most RESPONSE_READ_LIMIT bytes of the answer are read.
 */
export function sendOnce(url: string, headers: Record<string, string>, body: string, options: SendOptions): Promise<SendOutcome> {
  const refused = refusedUrl(url, options.allowPrivate);
  if (refused) return Promise.resolve({ kind: 'refused', error: `${url}: ${refused}` });
  const target = new URL(url);
  let refusal: RefusedAddressError | null = null;
  const safeLookup: LookupFunction = (hostname, lookupOptions, callback) => {
    pickSafeAddress(hostname, options.resolve, options.allowPrivate).then(
      ({ address, family }) => {
        if (lookupOptions.all) callback(null, [{ address, family }]);
        else callback(null, address, family);
      },
      (error: Error) => {
        if (error instanceof RefusedAddressError) refusal = error;
        callback(error, '', 0);
      },
    );
  };
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: SendOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      request.destroy();
      resolve(outcome);
    };
    const client = target.protocol === 'https:' ? https : http;
    const request = client.request(
      target,
      { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, lookup: safeLookup, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        let read = 0;
        const done = () =>
          finish({ kind: 'answered', status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, RESPONSE_READ_LIMIT) });
        response.on('data', (chunk: Buffer) => {
          if (read < RESPONSE_READ_LIMIT) chunks.push(chunk.subarray(0, RESPONSE_READ_LIMIT - read));
          read += chunk.length;
          // Enough read: the rest is never downloaded.
          if (read >= RESPONSE_READ_LIMIT) done();
        });
        response.on('end', done);
        response.on('error', done);
      },
    );
    const timer = setTimeout(() => finish({ kind: 'unreachable', error: `no answer within ${options.timeoutMs} ms` }), options.timeoutMs);
    const onAbort = () => finish({ kind: 'unreachable', error: 'the server was stopping' });
    options.signal.addEventListener('abort', onAbort, { once: true });
    request.on('error', (error) => {
      if (refusal) finish({ kind: 'refused', error: refusal.message });
      else finish({ kind: 'unreachable', error: error.message || String(error) });
    });
    request.end(body);
  });
}
