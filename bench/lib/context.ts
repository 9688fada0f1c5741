import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerProcess } from './proc';
import { freePort, spawnServer } from './proc';

/**
 * The rate limits the bench turns off: it measures capacity, not the limits' effect. With them on,
 * a /ws socket may send 20 frames a second and each user 10 /bot asks a minute.
 */
export const RATE_LIMITS_OFF = { WS_RATE_LIMIT: '0', BOT_RATE_LIMIT: '0', LOGIN_RATE_LIMIT: '0', MESSAGE_RATE_LIMIT: '0', REGISTER_RATE_LIMIT: '0' } as const;

/** What every scenario shares: a temp directory for databases and logs, and the server's secret. */
export class BenchContext {
  readonly secretKey = randomBytes(32).toString('hex');
  private serial = 0;

  constructor(readonly tmpRoot: string) {}

  /** A fresh directory per server, so every server starts on an empty database. */
  private dir(name: string): string {
    const dir = join(this.tmpRoot, `${String(++this.serial).padStart(2, '0')}-${name}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** The project's server (src/server.ts) on a fresh SQLite file; `env` adds e.g. the Gemini settings. */
  async startProject(name: string, env: Record<string, string> = {}): Promise<{ server: ServerProcess; dbPath: string }> {
    const dir = this.dir(name);
    const dbPath = join(dir, 'bench.db');
    const port = freePort();
    const server = await spawnServer({
      name: 'server',
      script: 'src/server.ts',
      logDir: dir,
      port,
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: `file:${dbPath}`,
        SECRET_KEY: this.secretKey,
        NODE_ENV: 'production',
        ...RATE_LIMITS_OFF,
        ...env,
      },
    });
    return { server, dbPath };
  }

  /** bench/baseline-server.ts on a fresh SQLite file, committing each message (`row`) or each turn's messages (`group`). */
  async startBaseline(commit: BaselineCommit): Promise<{ server: ServerProcess; dbPath: string }> {
    const dir = this.dir(`baseline-${commit}`);
    const dbPath = join(dir, 'baseline.db');
    const port = freePort();
    const server = await spawnServer({
      name: 'baseline',
      script: 'bench/baseline-server.ts',
      logDir: dir,
      port,
      env: { PORT: String(port), BASELINE_DB: dbPath, BASELINE_COMMIT: commit },
    });
    return { server, dbPath };
  }

  /** A directory for a helper process's logs. */
  logDir(name: string): string {
    return this.dir(name);
  }
}

export type BaselineCommit = 'row' | 'group';

/** Progress lines go to stderr so stdout holds only the report. */
export const progress = (line: string) => process.stderr.write(`  … ${line}\n`);
