import { join } from 'node:path';
import { DEFAULT_MAX_CONCURRENT_UPLOADS } from '../../src/config';
import { createRoom, registerAndLogin } from '../lib/api';
import type { BenchContext } from '../lib/context';
import { progress } from '../lib/context';

export interface FilesResult {
  fileMb: number;
  /** MB/s of one upload at a time (multipart, sniffed, streamed to the store), and of Bun writing the same body to a file. */
  uploadMbPerSecond: { project: number; bun: number };
  /** MB/s of one download at a time through the signed link, and of Bun serving the same file from disk. */
  downloadMbPerSecond: { project: number; bun: number };
  /** MAX_CONCURRENT_UPLOADS of the server: upload bodies read at once, the others wait their turn. */
  maxConcurrentUploads: number;
  /**
   * `clients` uploading a file each at once, with files of `fileMb` and of a quarter of it: the server's
   * RSS before and its peak during, MB. Streamed uploads cost the same whatever the file's size.
   */
  concurrent: { clients: number; fileMb: number; seconds: number; rssBeforeMb: number; peakRssMb: number; sentMb: number }[];
}

const MB = 1024 * 1024;

/** A PNG-headed file of `bytes`, so it passes the sniffing; the rest is filler the server never reads. */
function pngFile(bytes: number): Uint8Array<ArrayBuffer> {
  const file = new Uint8Array(bytes);
  file.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 1, 0, 0, 0, 1, 0]);
  for (let i = 24; i < bytes; i += 4096) file[i] = i & 0xff;
  return file;
}

const form = (file: Uint8Array<ArrayBuffer>) => {
  const body = new FormData();
  body.append('file', new Blob([file]), 'bench.png');
  return body;
};

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

/**
 * Uploads and downloads of one `fileMb` file against Bun doing the same with no checks (writing a
 * request body to a file, serving a file), then `clients` uploads at once with the server's peak
 * RSS: flat when uploads stream (the server never holds a whole file).
 */
export async function runFiles(context: BenchContext, { fileMb = 20, rounds = 5, clients = 20 } = {}): Promise<FilesResult> {
  const maxConcurrentUploads = DEFAULT_MAX_CONCURRENT_UPLOADS;
  const { server, dbPath } = await context.startProject('files', { MAX_CONCURRENT_UPLOADS: String(maxConcurrentUploads) });
  const baseDir = join(dbPath, '..', 'bun-baseline');
  const baseline = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    maxRequestBodySize: (fileMb + 1) * MB,
    fetch: async (request) => {
      if (request.method === 'POST') {
        await Bun.write(join(baseDir, 'upload.bin'), request);
        return new Response('ok');
      }
      return new Response(Bun.file(join(baseDir, 'upload.bin')));
    },
  });
  try {
    const file = pngFile(fileMb * MB);
    const owner = await registerAndLogin(server.url, `files_${Date.now()}`);
    const chatId = await createRoom(server.url, owner, 'files');
    const upload = async (body = file) => {
      const response = await fetch(`${server.url}/api/chats/${chatId}/attachments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.token}` },
        body: form(body),
      });
      if (response.status !== 201) throw new Error(`upload → ${response.status} ${await response.text()}`);
      return (await response.json()) as { url: string };
    };
    progress(`files: ${rounds} uploads and downloads of ${fileMb} MiB, project and Bun`);
    let url = '';
    const projectUp = await timed(async () => {
      for (let i = 0; i < rounds; i++) url = (await upload()).url;
    });
    const bunUp = await timed(async () => {
      for (let i = 0; i < rounds; i++) await (await fetch(baseline.url, { method: 'POST', body: form(file) })).text();
    });
    const projectDown = await timed(async () => {
      for (let i = 0; i < rounds; i++) await (await fetch(`${server.url}${url}`)).arrayBuffer();
    });
    const bunDown = await timed(async () => {
      for (let i = 0; i < rounds; i++) await (await fetch(baseline.url)).arrayBuffer();
    });
    const concurrent: FilesResult['concurrent'] = [];
    // The smaller files first: the peak of the larger ones cannot hide in what the smaller left behind.
    for (const size of [fileMb / 4, fileMb]) {
      progress(`files: ${clients} uploads of ${size} MiB at once`);
      const sized = pngFile(size * MB);
      const rssBeforeMb = server.rssWindow().peak() / MB;
      const window = server.rssWindow();
      const seconds = await timed(() => Promise.all(Array.from({ length: clients }, () => upload(sized))));
      concurrent.push({ clients, fileMb: size, seconds, rssBeforeMb, peakRssMb: window.peak() / MB, sentMb: clients * size });
    }
    const mbPerSecond = (time: number) => (fileMb * rounds) / time;
    return {
      fileMb,
      uploadMbPerSecond: { project: mbPerSecond(projectUp), bun: mbPerSecond(bunUp) },
      downloadMbPerSecond: { project: mbPerSecond(projectDown), bun: mbPerSecond(bunDown) },
      maxConcurrentUploads,
      concurrent,
    };
  } finally {
    await baseline.stop(true);
    await server.stop();
  }
}
