import { describe, expect, test } from 'bun:test';
import { media } from '../../../test/support/media';
import { claimContradicts, imageSize, mediaFacts, PLAIN_TEXT, sniff, TextValidator } from './sniff';

describe('sniff', () => {
  test.each([
    ['png', media.png(), 'image/png', 'image'],
    ['jpeg', media.jpeg(), 'image/jpeg', 'image'],
    ['gif', media.gif(), 'image/gif', 'image'],
    ['webp', media.webp(), 'image/webp', 'image'],
    ['wav', media.wav(), 'audio/wav', 'audio'],
    ['ogg/opus', media.ogg(), 'audio/ogg', 'audio'],
    ['webm', media.webm(), 'audio/webm', 'audio'],
    ['mp3 frame', media.mp3(), 'audio/mpeg', 'audio'],
    ['mp3 with ID3', media.mp3WithTag(), 'audio/mpeg', 'audio'],
    ['m4a', media.m4a(), 'audio/mp4', 'audio'],
    ['pdf', media.pdf(), 'application/pdf', 'pdf'],
    ['text', media.text(), PLAIN_TEXT, 'file'],
  ])('%s is recognised from its bytes', (_name, file, contentType, kind) => {
    expect(sniff(file, { complete: true })).toEqual({ contentType, kind } as never);
  });

  test.each([
    ['svg', media.svg()],
    ['html', new TextEncoder().encode('  <!doctype html><p>hi')],
    ['an executable', media.exe()],
    ['binary with NUL', new Uint8Array([0x68, 0x69, 0x00, 0x01])],
    ['invalid UTF-8', new Uint8Array([0x68, 0xff, 0xfe, 0x69])],
    ['nothing', new Uint8Array()],
  ])('%s is not on the allow-list', (_name, file) => {
    expect(sniff(file, { complete: true })).toBeNull();
  });

  test('a UTF-8 character cut at the end of the head is text when more follows, not when the file ends there', () => {
    const cut = new TextEncoder().encode('café').subarray(0, 4);
    expect(sniff(cut)?.kind).toBe('file');
    expect(sniff(cut, { complete: true })).toBeNull();
  });

  test('the rest of a text file is checked as it streams', () => {
    const ok = new TextValidator();
    expect(ok.push(new TextEncoder().encode('line\n'))).toBe(true);
    expect(ok.end()).toBe(true);
    expect(new TextValidator().push(new Uint8Array([0x41, 0x00]))).toBe(false);
    const cut = new TextValidator();
    expect(cut.push(new Uint8Array([0xc3]))).toBe(true);
    expect(cut.end()).toBe(false);
  });
});

describe('claimContradicts', () => {
  const png = sniff(media.png())!;
  const text = sniff(media.text())!;
  test('no claim, or a generic one, contradicts nothing; aliases and parameters are fine', () => {
    expect(claimContradicts(null, png)).toBe(false);
    expect(claimContradicts('application/octet-stream', png)).toBe(false);
    expect(claimContradicts('IMAGE/PNG', png)).toBe(false);
    expect(claimContradicts('audio/webm;codecs=opus', sniff(media.webm())!)).toBe(false);
    expect(claimContradicts('image/jpg', sniff(media.jpeg())!)).toBe(false);
    expect(claimContradicts('text/markdown', text)).toBe(false);
  });
  test('a claim of another type is a lie', () => {
    expect(claimContradicts('image/png', sniff(media.pdf())!)).toBe(true);
    expect(claimContradicts('image/jpeg', png)).toBe(true);
    expect(claimContradicts('text/html', text)).toBe(true);
    expect(claimContradicts('image/png', text)).toBe(true);
  });
});

describe('mediaFacts', () => {
  test('image sizes from PNG, JPEG, GIF and WebP headers', () => {
    expect(imageSize(media.png(640, 480), 'image/png')).toEqual({ width: 640, height: 480 });
    expect(imageSize(media.jpeg(800, 600), 'image/jpeg')).toEqual({ width: 800, height: 600 });
    expect(imageSize(media.gif(32, 16), 'image/gif')).toEqual({ width: 32, height: 16 });
    expect(imageSize(media.webp(1024, 768), 'image/webp')).toEqual({ width: 1024, height: 768 });
  });
  test('a WAV duration from its format and data chunks; none for formats that do not state it cheaply', () => {
    expect(mediaFacts(media.wav(1500), 'audio/wav')).toEqual({ width: null, height: null, durationMs: 1500 });
    expect(mediaFacts(media.ogg(), 'audio/ogg')).toEqual({ width: null, height: null, durationMs: null });
  });
  test('a truncated or garbled header gives no size rather than a wrong one', () => {
    expect(imageSize(media.png().subarray(0, 18), 'image/png')).toBeNull();
    expect(imageSize(new Uint8Array([0xff, 0xd8, 0xff, 0x00, 0x00]), 'image/jpeg')).toBeNull();
  });
});
