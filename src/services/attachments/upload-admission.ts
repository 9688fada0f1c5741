import { AppError } from '../errors';
import type { UploadPace } from './upload-pace';
import { pacedBody } from './upload-pace';

/** What a refused upload is told to wait before trying again. */
const RETRY_AFTER_SECONDS = 2;

export interface UploadAdmissionLimits {
  /** MAX_CONCURRENT_UPLOADS: upload bodies read at once in this process. */
  concurrency: number;
  /** UPLOAD_QUEUE: uploads waiting for a turn; one more is refused at once. */
  maxWaiting: number;
  /** UPLOAD_QUEUE_WAIT_MS: an upload that waited this long without a turn is refused. */
  waitMs: number;
  /** UPLOAD_MIN_BYTES_PER_SECOND over UPLOAD_MIN_RATE_WINDOW_MS: what an admitted body must keep up to keep its slot. */
  pace: UploadPace;
  onRefused?: () => void;
  onTooSlow?: () => void;
}

/** What an upload hands the admission: its body, and the signal that says its client has gone. */
export interface AdmittedUpload {
  body: ReadableStream<Uint8Array> | null;
  signal?: AbortSignal;
}

interface Waiter {
  /** Hands the waiter a slot (still counted as taken). */
  admit: () => void;
}

const busy = () => new AppError('SERVICE_UNAVAILABLE', 'Too many uploads at once: try again shortly', undefined, RETRY_AFTER_SECONDS);

/**
 * Every upload body of the process (attachments and avatars) is read in a turn, at most `concurrency`
 * at once. Bun reads a body ahead of a slower consumer into memory (about 9 MB per upload in flight,
 * whatever the file's size), but a body nobody reads yet stays small (about 1.6 MB: TCP backpressure
 * stops the client), so waiting uploads cost little and the peak stays flat however many arrive.
 * At most `maxWaiting` wait; past that, or after `waitMs`, an upload is refused with 503 and a
 * `Retry-After`, before any of its bytes were stored. A client gone while it waits leaves the queue.
 * A body admitted must keep arriving at `pace` (see pacedBody), or it ends with 408 and its slot goes
 * to the next in line: a client trickling a byte at a time cannot hold a slot for as long as it likes.
 * @example const view = await admission.admit({ body: request.body, signal: request.signal }, (body) => readAndStore(body))
 */
export class UploadAdmission {
  private reading = 0;
  /** In arrival order (a Set iterates in insertion order), and a waiter that leaves is removed in O(1). */
  private readonly waiting = new Set<Waiter>();

  constructor(private readonly limits: UploadAdmissionLimits) {}

  /** Upload bodies being read now. */
  get inFlight(): number {
    return this.reading;
  }

  /** Uploads waiting for a turn now. */
  get queued(): number {
    return this.waiting.size;
  }

  /** Runs `read` on the upload's body, paced, in a turn; the turn is given back however `read` ends. */
  async admit<T>(upload: AdmittedUpload, read: (body: ReadableStream<Uint8Array> | null) => Promise<T>): Promise<T> {
    await this.turn(upload.signal);
    try {
      return await read(upload.body && pacedBody(upload.body, this.limits.pace, this.limits.onTooSlow));
    } finally {
      this.release();
    }
  }

  private turn(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) return Promise.reject(gone());
    if (this.reading < this.limits.concurrency) {
      this.reading++;
      return Promise.resolve();
    }
    if (this.waiting.size >= this.limits.maxWaiting) return Promise.reject(this.refused());
    return new Promise<void>((resolve, reject) => {
      const leave = () => {
        this.waiting.delete(waiter);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        leave();
        reject(gone());
      };
      const waiter: Waiter = {
        admit: () => {
          leave();
          resolve();
        },
      };
      const timer = setTimeout(() => {
        leave();
        reject(this.refused());
      }, this.limits.waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.add(waiter);
    });
  }

  private release(): void {
    // A freed slot goes straight to the longest waiter, still counted as taken: were it given back
    // first, an upload arriving before the waiter resumes could take it too.
    const next = this.waiting.values().next();
    if (next.done) this.reading--;
    else next.value.admit();
  }

  private refused(): AppError {
    this.limits.onRefused?.();
    return busy();
  }
}

/** The client closed the request while its upload waited: nobody reads this answer. */
const gone = () => new AppError('BAD_REQUEST', 'The upload was cancelled by the client');
