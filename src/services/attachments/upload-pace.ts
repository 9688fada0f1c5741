import { AppError } from '../errors';

export interface UploadPace {
  /** UPLOAD_MIN_BYTES_PER_SECOND: the least an admitted body must deliver; 0 turns the check off. */
  minBytesPerSecond: number;
  /** UPLOAD_MIN_RATE_WINDOW_MS: how much waiting for the client each check looks at. */
  windowMs: number;
}

type BodyRead = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;

const tooSlow = (pace: UploadPace) =>
  new AppError('REQUEST_TIMEOUT', `The upload arrived too slowly: send at least ${pace.minBytesPerSecond} bytes per second (UPLOAD_MIN_BYTES_PER_SECOND)`);

/**
 * The rate check of one body, on the time the server spent waiting for it: windows of `windowMs` of
 * waiting, each of which must bring at least the rate's share of bytes. Only waiting counts, so a
 * server that writes slowly to its store never blames the client; a check per window, not per chunk,
 * so a pause on a good network (a retransmit, a radio waking up) is made up by what follows it.
 */
export class PaceWindow {
  private waitedMs = 0;
  private bytes = 0;
  private readonly minBytesPerWindow: number;

  constructor(private readonly pace: UploadPace) {
    this.minBytesPerWindow = Math.ceil((pace.minBytesPerSecond * pace.windowMs) / 1000);
  }

  /** Waiting left before the current window closes. */
  get remainingMs(): number {
    return Math.max(0, this.pace.windowMs - this.waitedMs);
  }

  /** Counts `waitedMs` of waiting that brought `bytes`; false when that closed a window short of the rate. */
  record(waitedMs: number, bytes: number): boolean {
    this.waitedMs += waitedMs;
    this.bytes += bytes;
    if (this.waitedMs < this.pace.windowMs) return true;
    const keptPace = this.bytes >= this.minBytesPerWindow;
    this.waitedMs = 0;
    this.bytes = 0;
    return keptPace;
  }
}

/**
 * `body` as a stream that errors with REQUEST_TIMEOUT (408) once a window of waiting for it brought
 * less than `pace` asks (see PaceWindow): a client trickling a byte at a time never lets Bun's idle
 * timeout fire, and would hold its upload slot for as long as it likes. The clock runs only while
 * the reader waits for the next chunk (this stream is pulled one chunk at a time), and its one timer
 * is armed for that wait and cleared when it ends, however it ends. A body too slow is cancelled, so
 * the connection is not read any further. Chunks pass through as they are, never copied.
 * @example const body = pacedBody(request.body, { minBytesPerSecond: 16384, windowMs: 5000 }, () => metrics.refused('upload_too_slow'))
 */
export function pacedBody(
  body: ReadableStream<Uint8Array>,
  pace: UploadPace,
  onTooSlow: () => void = () => {},
  now: () => number = () => performance.now(),
): ReadableStream<Uint8Array> {
  if (pace.minBytesPerSecond === 0) return body;
  const reader = body.getReader();
  const window = new PaceWindow(pace);
  const refusal = (): AppError => {
    onTooSlow();
    const error = tooSlow(pace);
    reader.cancel(error).catch(() => {});
    return error;
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let since = now();
        let timer: Timer | undefined;
        let next: BodyRead;
        try {
          next = await new Promise<BodyRead>((resolve, reject) => {
            // A client that sends nothing at all is checked at the window's end too, not only when a chunk comes.
            const arm = () => {
              timer = setTimeout(() => {
                const at = now();
                const keptPace = window.record(at - since, 0);
                since = at;
                if (keptPace) arm();
                else reject(refusal());
              }, window.remainingMs);
            };
            arm();
            reader.read().then(resolve, reject);
          });
        } finally {
          clearTimeout(timer);
        }
        // A body that has ended has nothing left to hold its slot with.
        if (next.done) return controller.close();
        if (!window.record(now() - since, next.value.length)) throw refusal();
        controller.enqueue(next.value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    // Pulled only when the consumer reads: the time inside `pull` is the time spent waiting for the client.
    { highWaterMark: 0 },
  );
}
