/**
 * What a file is, decided from its first bytes (magic numbers), never from the client's claim; and
 * what its header says cheaply: an image's width and height, a WAV's duration. Pure functions over
 * the head of the file (SNIFF_BYTES), tested beside (sniff.test.ts).
 */

/** How much of a file's start is read before deciding: a JPEG's size usually sits within it (after EXIF); past it, it stays unknown. */
export const SNIFF_BYTES = 64 * 1024;

export type AttachmentKind = 'image' | 'audio' | 'pdf' | 'file';

export interface Sniffed {
  contentType: string;
  kind: AttachmentKind;
}

export const PLAIN_TEXT = 'text/plain; charset=utf-8';

const ascii = (head: Uint8Array, at: number, text: string) => {
  if (head.length < at + text.length) return false;
  for (let index = 0; index < text.length; index++) if (head[at + index] !== text.charCodeAt(index)) return false;
  return true;
};
const startsWith = (head: Uint8Array, bytes: number[]) => head.length >= bytes.length && bytes.every((byte, index) => head[index] === byte);

/** ISO base media brands that browsers and phones write for recorded or encoded audio (M4A). */
const MP4_BRANDS = ['M4A ', 'M4B ', 'mp41', 'mp42', 'isom', 'iso2', 'iso5', 'iso6', 'dash'];

/**
 * The allow-list: common images (PNG, JPEG, GIF, WebP), common audio including what browsers record
 * (WebM, Ogg/Opus, MP3, WAV, M4A), PDF, and plain UTF-8 text. Anything else is null (a 415): SVG and
 * other markup too, which a browser could run as a document.
 * @example sniff(new Uint8Array([0x25, 0x50, 0x44, 0x46, 0x2d])) // { contentType: 'application/pdf', kind: 'pdf' }
 */
export function sniff(head: Uint8Array, { complete = false }: { complete?: boolean } = {}): Sniffed | null {
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { contentType: 'image/png', kind: 'image' };
  if (startsWith(head, [0xff, 0xd8, 0xff])) return { contentType: 'image/jpeg', kind: 'image' };
  if (ascii(head, 0, 'GIF87a') || ascii(head, 0, 'GIF89a')) return { contentType: 'image/gif', kind: 'image' };
  if (ascii(head, 0, 'RIFF') && ascii(head, 8, 'WEBP')) return { contentType: 'image/webp', kind: 'image' };
  if (ascii(head, 0, 'RIFF') && ascii(head, 8, 'WAVE')) return { contentType: 'audio/wav', kind: 'audio' };
  if (ascii(head, 0, 'OggS')) return { contentType: 'audio/ogg', kind: 'audio' };
  // EBML; WebM says so in its DocType, early in the header (other Matroska files are not on the list).
  if (startsWith(head, [0x1a, 0x45, 0xdf, 0xa3]) && includesAscii(head.subarray(0, 64), 'webm')) return { contentType: 'audio/webm', kind: 'audio' };
  if (ascii(head, 0, 'ID3') || isMp3Frame(head)) return { contentType: 'audio/mpeg', kind: 'audio' };
  if (ascii(head, 4, 'ftyp') && MP4_BRANDS.some((brand) => ascii(head, 8, brand))) return { contentType: 'audio/mp4', kind: 'audio' };
  if (ascii(head, 0, '%PDF-')) return { contentType: 'application/pdf', kind: 'pdf' };
  if (isPlainText(head, complete)) return { contentType: PLAIN_TEXT, kind: 'file' };
  return null;
}

/** An MPEG audio layer III frame header: 11 sync bits, a valid version, layer III. */
function isMp3Frame(head: Uint8Array): boolean {
  if (head.length < 2 || head[0] !== 0xff) return false;
  const second = head[1]!;
  return (second & 0xe0) === 0xe0 && ((second >> 3) & 0x03) !== 0x01 && ((second >> 1) & 0x03) === 0x01;
}

function includesAscii(bytes: Uint8Array, text: string): boolean {
  for (let at = 0; at + text.length <= bytes.length; at++) if (ascii(bytes, at, text)) return true;
  return false;
}

/**
 * Valid UTF-8 without control characters (tabs, line breaks and form feeds aside), not starting
 * with `<` (markup). `complete` says the head is the whole file; otherwise a character cut at its
 * end is fine. The rest of a text file is checked as it streams (`TextValidator`).
 */
export function isPlainText(head: Uint8Array, complete: boolean): boolean {
  if (head.length === 0) return false;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: !complete });
  } catch {
    return false;
  }
  if (/^\uFEFF?\s*</.test(text)) return false;
  return !CONTROL.test(text);
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b\x0e-\x1f\x7f]/;

/** Checks the rest of a text file chunk by chunk: invalid UTF-8 or a control character anywhere refuses it. */
export class TextValidator {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  /** False when `chunk` (the next bytes) breaks the rule; call `end()` after the last. */
  push(chunk: Uint8Array): boolean {
    try {
      return !CONTROL.test(this.decoder.decode(chunk, { stream: true }));
    } catch {
      return false;
    }
  }

  end(): boolean {
    try {
      this.decoder.decode();
      return true;
    } catch {
      return false;
    }
  }
}

/** The types a client may claim for each sniffed type; a claim of anything else is a lie (415). */
const ALIASES: Record<string, string[]> = {
  'image/jpeg': ['image/jpg', 'image/pjpeg'],
  'audio/wav': ['audio/x-wav', 'audio/wave', 'audio/vnd.wave'],
  'audio/ogg': ['audio/opus', 'application/ogg', 'video/ogg'],
  'audio/webm': ['video/webm'],
  'audio/mpeg': ['audio/mp3', 'audio/mpeg3', 'audio/x-mpeg'],
  'audio/mp4': ['audio/m4a', 'audio/x-m4a', 'audio/aac', 'video/mp4', 'audio/x-mp4'],
};

/**
 * Whether the client's Content-Type for the file contradicts its bytes. No claim, or the generic
 * `application/octet-stream`, contradicts nothing; any `text/*` except markup fits plain text.
 * @example claimContradicts('image/png', { contentType: 'application/pdf', kind: 'pdf' }) // true
 */
export function claimContradicts(claimed: string | null, sniffed: Sniffed): boolean {
  const type = claimed?.split(';')[0]!.trim().toLowerCase() ?? '';
  if (type === '' || type === 'application/octet-stream') return false;
  if (sniffed.contentType === PLAIN_TEXT) return !type.startsWith('text/') || type === 'text/html' || type === 'text/xml';
  return type !== sniffed.contentType && !(ALIASES[sniffed.contentType] ?? []).includes(type);
}

export interface MediaFacts {
  width: number | null;
  height: number | null;
  durationMs: number | null;
}

const u16be = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const u16le = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const u24le = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
const u32le = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const u32be = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/**
 * An image's width and height from its header (PNG, JPEG, GIF, WebP), a WAV's duration from its
 * format and data chunks; null where the head does not say (other audio durations are read from the
 * stored file once written: duration.ts).
 * @example mediaFacts(pngHead, 'image/png') // { width: 640, height: 480, durationMs: null }
 */
export function mediaFacts(head: Uint8Array, contentType: string): MediaFacts {
  const size = imageSize(head, contentType);
  return { width: size?.width ?? null, height: size?.height ?? null, durationMs: contentType === 'audio/wav' ? wavDurationMs(head) : null };
}

export function imageSize(head: Uint8Array, contentType: string): { width: number; height: number } | null {
  try {
    switch (contentType) {
      case 'image/png':
        return ascii(head, 12, 'IHDR') ? positive(u32be(head, 16), u32be(head, 20)) : null;
      case 'image/gif':
        return positive(u16le(head, 6), u16le(head, 8));
      case 'image/webp':
        return webpSize(head);
      case 'image/jpeg':
        return jpegSize(head);
      default:
        return null;
    }
  } catch {
    return null;
  }
}

/** Reading past the head yields undefined, and arithmetic on it NaN: such a size is unknown. */
function positive(width: number, height: number) {
  return Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0 ? { width, height } : null;
}

function webpSize(head: Uint8Array) {
  if (head.length < 30) return null;
  if (ascii(head, 12, 'VP8 ')) return positive(u16le(head, 26) & 0x3fff, u16le(head, 28) & 0x3fff);
  if (ascii(head, 12, 'VP8L')) {
    const [b0, b1, b2, b3] = [head[21]!, head[22]!, head[23]!, head[24]!];
    return positive(1 + (((b1 & 0x3f) << 8) | b0), 1 + (((b3 & 0x0f) << 10) | (b2 << 2) | ((b1 & 0xc0) >> 6)));
  }
  if (ascii(head, 12, 'VP8X')) return positive(1 + u24le(head, 24), 1 + u24le(head, 27));
  return null;
}

/** Walks the JPEG's segments to its first start-of-frame marker, which holds the size. */
function jpegSize(head: Uint8Array) {
  let at = 2;
  while (at + 9 < head.length) {
    if (head[at] !== 0xff) return null;
    const marker = head[at + 1]!;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2; // no length
      continue;
    }
    const isStartOfFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isStartOfFrame) return positive(u16be(head, at + 7), u16be(head, at + 5));
    at += 2 + u16be(head, at + 2);
  }
  return null;
}

function wavDurationMs(head: Uint8Array): number | null {
  let at = 12;
  let byteRate = 0;
  while (at + 8 <= head.length) {
    const size = u32le(head, at + 4);
    if (ascii(head, at, 'fmt ') && at + 16 <= head.length) byteRate = u32le(head, at + 16);
    if (ascii(head, at, 'data')) return byteRate > 0 ? Math.round((size * 1000) / byteRate) : null;
    at += 8 + size + (size % 2);
  }
  return null;
}
