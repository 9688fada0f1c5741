import { freePort } from './cluster';

/**
 * A Redis of the test's own (`redis-server` from PATH, no persistence), for tests that make Redis
 * fail: the shared one must never be stopped. `pause()` freezes it (SIGSTOP: connections stay open
 * and nothing answers, as a hung server), `resume()` thaws it.
 */
export interface OwnRedis {
  url: string;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<OwnRedis> {
  const port = await freePort();
  const proc = Bun.spawn(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  // Ready once it says so; a redis-server that exits first fails the start with what it printed.
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let output = '';
  while (!output.includes('Ready to accept connections')) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`redis-server on port ${port} did not start:\n${output}${await new Response(proc.stderr).text()}`);
    output += decoder.decode(value, { stream: true });
  }
  // Keep draining its output so a full pipe never blocks it.
  void (async () => {
    while (!(await reader.read()).done);
  })();
  return {
    url: `redis://127.0.0.1:${port}`,
    pause: () => proc.kill('SIGSTOP'),
    resume: () => proc.kill('SIGCONT'),
    async stop() {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
      await proc.exited;
    },
  };
}
