import type { Subprocess } from 'bun';

/**
 * A Redis of a test's own on a free port, which the test may stop, start again on the same port,
 * or freeze (SIGSTOP) to make it stall: the machine's shared Redis is never touched.
 */
export async function startPrivateRedis() {
  const port = await freePort();
  let server: Subprocess<'ignore', 'pipe', 'ignore'> | null = null;

  /** Starts it, unless it runs already. */
  async function start(): Promise<void> {
    // A server killed from outside (a test runner ending a test's processes) is started again.
    if (server && server.exitCode === null && server.signalCode === null) return;
    server = Bun.spawn(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdout: 'pipe',
      stderr: 'ignore',
    });
    await untilLine(server.stdout, 'Ready to accept connections');
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    start,
    async stop(): Promise<void> {
      server?.kill('SIGKILL');
      await server?.exited;
      server = null;
    },
    freeze: () => server?.kill('SIGSTOP'),
    thaw: () => server?.kill('SIGCONT'),
  };
}

export type PrivateRedis = Awaited<ReturnType<typeof startPrivateRedis>>;

/**
 * A TCP proxy in front of `target` that a test can cut (every connection through it is closed and
 * new ones are refused) and restore: one instance loses Redis while others keep it. It can also
 * stall: connections stay open but nothing passes either way (a server that hangs, a network that
 * drops packets) until `resume()` delivers what was held.
 */
export function startTcpProxy(target: { hostname: string; port: number }) {
  interface Pair {
    upstream: Bun.Socket<undefined> | null;
    pending: Uint8Array[];
    /** Bytes from the target held while stalled. */
    held: Uint8Array[];
  }
  const pairs = new Map<Bun.Socket<Pair>, Pair>();
  /** Waiting for a text to pass from the target to a client (see `passed`). */
  const watchers = new Set<{ text: string; resolve: () => void }>();
  const decoder = new TextDecoder();
  const forward = (client: Bun.Socket<Pair>, data: Uint8Array) => {
    client.write(data);
    if (watchers.size === 0) return;
    const text = decoder.decode(data);
    for (const watcher of watchers) {
      if (!text.includes(watcher.text)) continue;
      watchers.delete(watcher);
      watcher.resolve();
    }
  };
  let cut = false;
  let stalled = false;
  const listener = Bun.listen<Pair>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(client) {
        if (cut) return void client.end();
        const pair: Pair = { upstream: null, pending: [], held: [] };
        client.data = pair;
        pairs.set(client, pair);
        void Bun.connect({
          hostname: target.hostname,
          port: target.port,
          socket: {
            open(upstream) {
              pair.upstream = upstream;
              if (!stalled) for (const chunk of pair.pending.splice(0)) upstream.write(chunk);
            },
            data: (_upstream, data) => {
              if (stalled) pair.held.push(new Uint8Array(data));
              else forward(client, data);
            },
            close: () => void client.end(),
            error: () => void client.end(),
          },
        }).catch(() => void client.end());
      },
      data(client, data) {
        if (client.data.upstream && !stalled) client.data.upstream.write(data);
        else client.data.pending.push(new Uint8Array(data));
      },
      close(client) {
        client.data?.upstream?.end();
        pairs.delete(client);
      },
    },
  });
  return {
    port: listener.port,
    /** Closes every connection through the proxy and refuses new ones until `restore()`. */
    cut() {
      cut = true;
      for (const [client, pair] of pairs) {
        pair.upstream?.end();
        client.end();
      }
      pairs.clear();
    },
    restore() {
      cut = false;
    },
    /** Holds every byte in both directions, connections left open. */
    stall() {
      stalled = true;
    },
    /** Delivers what was held, in order, and lets traffic through again. */
    resume() {
      stalled = false;
      for (const [client, pair] of pairs) {
        if (!pair.upstream) continue;
        for (const chunk of pair.pending.splice(0)) pair.upstream.write(chunk);
        for (const chunk of pair.held.splice(0)) forward(client, chunk);
      }
    },
    /** Resolves once bytes holding `text` have passed from the target to a client (whole in one chunk). */
    passed(text: string): Promise<void> {
      return new Promise((resolve) => watchers.add({ text, resolve }));
    },
    stop: () => listener.stop(true),
  };
}

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

async function untilLine(stream: ReadableStream<Uint8Array>, needle: string): Promise<void> {
  const decoder = new TextDecoder();
  let seen = '';
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`redis-server exited before "${needle}": ${seen}`);
    seen += decoder.decode(value, { stream: true });
    if (seen.includes(needle)) break;
  }
  // Keep draining, so a full pipe never blocks the server.
  void (async () => {
    while (!(await reader.read()).done);
  })();
}
