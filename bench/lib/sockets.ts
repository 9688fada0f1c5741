/** Opens a WebSocket and resolves once it is open; rejects on an early close, error, or after `timeoutMs`. */
export function openSocket(url: string, timeoutMs = 15_000, protocol?: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocol);
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`WebSocket ${url.split('?')[0]} did not open within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      ws.onopen = ws.onerror = ws.onclose = null;
      resolve(ws);
    };
    const fail = (event: Event) => {
      clearTimeout(timer);
      reject(new Error(`WebSocket ${url.split('?')[0]} failed to open (${event instanceof CloseEvent ? `close ${event.code}` : 'error'})`));
    };
    ws.onerror = fail;
    ws.onclose = fail;
  });
}

/**
 * Opens `count` sockets, `batch` at a time: thousands of simultaneous handshakes would only measure
 * the accept queue, and each /ws upgrade costs the server a JWT check and a user lookup.
 */
export async function openMany(
  count: number,
  urlOf: (index: number) => string,
  batch = 250,
  onBatch?: (opened: number) => void,
  protocol?: string,
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let start = 0; start < count; start += batch) {
    const size = Math.min(batch, count - start);
    sockets.push(...(await Promise.all(Array.from({ length: size }, (_, i) => openSocket(urlOf(start + i), undefined, protocol)))));
    onBatch?.(sockets.length);
  }
  return sockets;
}

/** Closes sockets and waits (bounded) for their close events, so the server sees them go. */
export async function closeAll(sockets: readonly WebSocket[], timeoutMs = 5_000): Promise<void> {
  const closed = sockets.map(
    (ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.addEventListener('close', () => resolve(), { once: true });
        ws.close();
      }),
  );
  await Promise.race([Promise.all(closed), Bun.sleep(timeoutMs)]);
}

/**
 * Waits until `ready()` holds, calling `probe()` every `everyMs` meanwhile (e.g. sending a message each
 * member must see, which proves its join/subscription is live). Bounded: throws after `timeoutMs`.
 */
export async function until(ready: () => boolean, probe: () => void, what: string, { everyMs = 250, timeoutMs = 30_000 } = {}): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!ready()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    probe();
    await Bun.sleep(everyMs);
  }
}
