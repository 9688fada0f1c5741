import { describe, expect, test } from 'bun:test';
import { media } from '../../../test/support/media';
import type { FileWindow } from './duration';
import { audioDurationMs, WINDOW_BYTES } from './duration';

/** A file in memory read as the store would be, counting the bytes asked for. */
function windowOver(file: Uint8Array): FileWindow & { bytesRead: () => number } {
  let bytesRead = 0;
  return {
    size: file.length,
    read: (offset, length) => {
      if (length > WINDOW_BYTES) throw new Error(`asked for ${length} bytes at once`);
      const part = file.subarray(offset, offset + length);
      bytesRead += part.length;
      return Promise.resolve(part);
    },
    bytesRead: () => bytesRead,
  };
}

const duration = (contentType: string, file: Uint8Array) => audioDurationMs(contentType, windowOver(file));

describe('audioDurationMs', () => {
  test('Ogg/Opus: the last page granule at 48 kHz, less the pre-skip', async () => {
    expect(await duration('audio/ogg', media.oggOpus({ durationMs: 1500, preSkip: 312 }))).toBe(1500);
    expect(await duration('audio/ogg', media.oggOpus({ durationMs: 61_250, preSkip: 3840 }))).toBe(61_250);
  });

  test('Ogg/Vorbis: the last page granule at the identification header rate', async () => {
    expect(await duration('audio/ogg', media.oggVorbis({ durationMs: 2000, rate: 44_100 }))).toBe(2000);
    expect(await duration('audio/ogg', media.oggVorbis({ durationMs: 750, rate: 16_000 }))).toBe(750);
  });

  test('a long Ogg is read at its start and its end only', async () => {
    const file = media.oggOpus({ durationMs: 90_000, fillerBytes: 400_000 });
    const window = windowOver(file);
    expect(await audioDurationMs('audio/ogg', window)).toBe(90_000);
    expect(window.bytesRead()).toBeLessThanOrEqual(2 * WINDOW_BYTES);
    expect(window.bytesRead()).toBeLessThan(file.length / 3);
  });

  test('MP3: the Xing, Info or VBRI frame count; behind a large ID3 tag too', async () => {
    // 1000 frames of 1152 samples at 44.1 kHz.
    expect(await duration('audio/mpeg', media.mp3Xing({ frames: 1000 }))).toBe(26_122);
    expect(await duration('audio/mpeg', media.mp3Xing({ frames: 1000, info: true }))).toBe(26_122);
    expect(await duration('audio/mpeg', media.mp3Xing({ frames: 1000, tagBytes: 100_000 }))).toBe(26_122);
    expect(await duration('audio/mpeg', media.mp3Vbri({ frames: 500 }))).toBe(13_061);
  });

  test('MP3 without a frame count: constant bitrate over the bytes from the first frame', async () => {
    // 128 kbit/s: 16,000 bytes a second.
    expect(await duration('audio/mpeg', media.mp3(160_000))).toBe(10_000);
  });

  test("M4A: mvhd's duration over its timescale, whether moov comes before or after the media data", async () => {
    expect(await duration('audio/mp4', media.m4aWithDuration({ timescale: 44_100, duration: 44_100 * 3 }))).toBe(3000);
    const moovLast = media.m4aWithDuration({ timescale: 1000, duration: 4321, moovLast: true, mdatBytes: 300_000 });
    const window = windowOver(moovLast);
    expect(await audioDurationMs('audio/mp4', window)).toBe(4321);
    expect(window.bytesRead()).toBeLessThan(WINDOW_BYTES);
    expect(await duration('audio/mp4', media.m4aWithDuration({ timescale: 600, duration: 1200, moovLast: true, largeSize: true }))).toBe(2000);
    expect(await duration('audio/mp4', media.m4aWithDuration({ timescale: 48_000, duration: 96_000, version: 1 }))).toBe(2000);
  });

  test('M4A that states no duration (fragmented, as Safari records) is null', async () => {
    expect(await duration('audio/mp4', media.m4aWithDuration({ duration: 0 }))).toBeNull();
  });

  test('WebM: Segment Info Duration times TimecodeScale; none stated (MediaRecorder) is null', async () => {
    expect(await duration('audio/webm', media.webmRecorded({ duration: 4321.6 }))).toBe(4322);
    expect(await duration('audio/webm', media.webmRecorded({ duration: 2_500_000, timecodeScale: 1000 }))).toBe(2500);
    expect(await duration('audio/webm', media.webmRecorded())).toBeNull();
  });

  test('truncated, garbled or foreign files are null, never a throw', async () => {
    const files: [string, Uint8Array][] = [
      ['audio/ogg', media.oggOpus()],
      ['audio/ogg', media.oggVorbis()],
      ['audio/mpeg', media.mp3Xing()],
      ['audio/mpeg', media.mp3Vbri()],
      ['audio/mp4', media.m4aWithDuration({ moovLast: true })],
      ['audio/webm', media.webmRecorded({ duration: 1000 })],
    ];
    for (const [contentType, file] of files) {
      for (const length of [0, 1, 4, 9, 27, 40, 60, 100]) {
        const result = await duration(contentType, file.subarray(0, length));
        expect(result === null || (Number.isInteger(result) && result >= 0)).toBe(true);
      }
      const garbled = file.map((byte, index) => (index % 7 === 3 ? 0xff : byte));
      const result = await duration(contentType, garbled);
      expect(result === null || (Number.isInteger(result) && result >= 0)).toBe(true);
    }
    expect(await duration('audio/ogg', media.ogg())).toBeNull();
    expect(await duration('audio/mp4', media.m4a())).toBeNull();
    expect(await duration('image/png', media.png())).toBeNull();
  });
});
