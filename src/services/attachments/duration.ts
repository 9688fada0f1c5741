/**
 * How long a recording lasts, from what its container states, never by decoding it: Ogg (Opus and
 * Vorbis) from the last page's granule position, MP3 from its Xing/Info or VBRI frame count (else
 * its bitrate and size), M4A/MP4 from `mvhd`, WebM from its Segment Info. A file is read through a
 * `FileWindow` of a few bounded reads (its start, its end, one box), never whole; anything
 * malformed or missing is null, never a throw. WAV durations come from the head (`mediaFacts`).
 */

/** The most one read asks for: the start or the end of a file, or one box's start. */
export const WINDOW_BYTES = 64 * 1024;

/** A stored file, read in small pieces. */
export interface FileWindow {
  size: number;
  /** Up to `length` (at most WINDOW_BYTES) bytes from `offset`; fewer at the end of the file; null when they cannot be had. */
  read(offset: number, length: number): Promise<Uint8Array | null>;
}

const u16le = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const u32le = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const u32be = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const u64be = (b: Uint8Array, at: number) => u32be(b, at) * 2 ** 32 + u32be(b, at + 4);
const ascii = (b: Uint8Array, at: number, text: string) => {
  if (b.length < at + text.length) return false;
  for (let index = 0; index < text.length; index++) if (b[at + index] !== text.charCodeAt(index)) return false;
  return true;
};

/** Whole milliseconds, or null for a count that is not a sensible duration (negative, infinite, NaN). */
const milliseconds = (seconds: number): number | null => (Number.isFinite(seconds) && seconds >= 0 ? Math.round(seconds * 1000) : null);

/**
 * The duration in milliseconds of an Ogg, MP3, M4A or WebM recording; null for other types and
 * wherever the file does not say (a WebM from a browser's MediaRecorder states none).
 * @example await audioDurationMs('audio/ogg', windowOver(bytes)) // 1500
 */
export async function audioDurationMs(contentType: string, file: FileWindow): Promise<number | null> {
  try {
    switch (contentType) {
      case 'audio/ogg':
        return await oggDurationMs(file);
      case 'audio/mpeg':
        return await mp3DurationMs(file);
      case 'audio/mp4':
        return await mp4DurationMs(file);
      case 'audio/webm':
        return await webmDurationMs(file);
      default:
        return null;
    }
  } catch {
    // Reading past what a truncated header holds: the duration is unknown, the upload is still fine.
    return null;
  }
}

/** The header of an Ogg page at `at`: its granule position (null for -1, "no packet ends here") and stream serial. */
function oggPage(bytes: Uint8Array, at: number): { granule: number | null; serial: number } | null {
  if (!ascii(bytes, at, 'OggS') || bytes[at + 4] !== 0 || at + 27 > bytes.length) return null;
  const low = u32le(bytes, at + 6);
  const high = u32le(bytes, at + 10);
  // Above 2^53 a granule is no real recording's; -1 (all ones) means no packet ends on this page.
  return { granule: high >= 0x200000 ? null : high * 2 ** 32 + low, serial: u32le(bytes, at + 14) };
}

async function oggDurationMs(file: FileWindow): Promise<number | null> {
  const head = await file.read(0, WINDOW_BYTES);
  const first = head && oggPage(head, 0);
  if (!head || !first) return null;
  const packet = 27 + head[26]!;
  let samplesPerSecond: number;
  let skipped = 0;
  if (ascii(head, packet, 'OpusHead')) {
    // Opus always counts granules at 48 kHz; the pre-skip samples are decoded but not played.
    samplesPerSecond = 48_000;
    skipped = u16le(head, packet + 10);
  } else if (head[packet] === 1 && ascii(head, packet + 1, 'vorbis')) {
    samplesPerSecond = u32le(head, packet + 12);
  } else {
    return null;
  }
  if (!samplesPerSecond) return null;
  const tailStart = Math.max(0, file.size - WINDOW_BYTES);
  const tail = await file.read(tailStart, file.size - tailStart);
  if (!tail) return null;
  for (let at = tail.length - 27; at >= 0; at--) {
    const page = oggPage(tail, at);
    if (page && page.serial === first.serial && page.granule !== null) return milliseconds((page.granule - skipped) / samplesPerSecond);
  }
  return null;
}

// MPEG audio layer III: bitrates (kbit/s) by index, for MPEG-1 and for MPEG-2/2.5; sample rates by version.
const MP3_BITRATES = {
  mpeg1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  mpeg2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
const MP3_SAMPLE_RATES: Record<number, number[]> = { 3: [44_100, 48_000, 32_000], 2: [22_050, 24_000, 16_000], 0: [11_025, 12_000, 8_000] };
/** How far a first frame may sit past the ID3 tag (padding some taggers leave). */
const MP3_SYNC_SEARCH_BYTES = 4096;

async function mp3DurationMs(file: FileWindow): Promise<number | null> {
  let start = 0;
  let bytes = await file.read(0, WINDOW_BYTES);
  if (!bytes) return null;
  if (ascii(bytes, 0, 'ID3') && bytes.length >= 10) {
    // An ID3v2 tag (cover art and all) comes first: its size is stored 7 bits a byte, plus a footer if flagged.
    const tagSize = ((bytes[6]! & 0x7f) << 21) | ((bytes[7]! & 0x7f) << 14) | ((bytes[8]! & 0x7f) << 7) | (bytes[9]! & 0x7f);
    start = 10 + tagSize + (bytes[5]! & 0x10 ? 10 : 0);
    bytes = await file.read(start, MP3_SYNC_SEARCH_BYTES + 256);
    if (!bytes) return null;
  }
  let at = 0;
  while (at + 4 <= Math.min(bytes.length, MP3_SYNC_SEARCH_BYTES) && !(bytes[at] === 0xff && (bytes[at + 1]! & 0xe0) === 0xe0)) at++;
  const frame = mp3Frame(bytes, at);
  if (!frame) return null;
  const frames = xingFrames(bytes, at, frame) ?? vbriFrames(bytes, at);
  if (frames !== null) return milliseconds((frames * frame.samplesPerFrame) / frame.sampleRate);
  // No frame count: a constant bitrate, over the bytes from the first frame on.
  return milliseconds(((file.size - start - at) * 8) / (frame.kbps * 1000));
}

interface Mp3Frame {
  mpeg1: boolean;
  mono: boolean;
  kbps: number;
  sampleRate: number;
  samplesPerFrame: number;
}

function mp3Frame(bytes: Uint8Array, at: number): Mp3Frame | null {
  if (at + 4 > bytes.length || bytes[at] !== 0xff || (bytes[at + 1]! & 0xe0) !== 0xe0) return null;
  const version = (bytes[at + 1]! >> 3) & 0x03;
  const layer = (bytes[at + 1]! >> 1) & 0x03;
  if (version === 1 || layer !== 1) return null;
  const mpeg1 = version === 3;
  const kbps = (mpeg1 ? MP3_BITRATES.mpeg1 : MP3_BITRATES.mpeg2)[bytes[at + 2]! >> 4];
  const sampleRate = MP3_SAMPLE_RATES[version]![(bytes[at + 2]! >> 2) & 0x03];
  if (!kbps || !sampleRate) return null;
  return { mpeg1, mono: bytes[at + 3]! >> 6 === 3, kbps, sampleRate, samplesPerFrame: mpeg1 ? 1152 : 576 };
}

/** A Xing (VBR) or Info (CBR) header's frame count: in the first frame, after its side information. */
function xingFrames(bytes: Uint8Array, at: number, frame: Mp3Frame): number | null {
  const sideInfo = frame.mpeg1 ? (frame.mono ? 17 : 32) : frame.mono ? 9 : 17;
  const xing = at + 4 + sideInfo;
  if (!ascii(bytes, xing, 'Xing') && !ascii(bytes, xing, 'Info')) return null;
  const framesFlag = 0x1;
  return u32be(bytes, xing + 4) & framesFlag ? u32be(bytes, xing + 8) || null : null;
}

/** A VBRI header's (Fraunhofer's encoder) frame count: 32 bytes after the first frame's header. */
function vbriFrames(bytes: Uint8Array, at: number): number | null {
  const vbri = at + 36;
  return ascii(bytes, vbri, 'VBRI') ? u32be(bytes, vbri + 14) || null : null;
}

/** Top-level boxes looked at before giving up on finding `moov` (a fragmented file has many). */
const MP4_MAX_BOXES = 64;

async function mp4DurationMs(file: FileWindow): Promise<number | null> {
  let offset = 0;
  for (let box = 0; box < MP4_MAX_BOXES && offset + 8 <= file.size; box++) {
    const header = await file.read(offset, 16);
    if (!header || header.length < 8) return null;
    let size = u32be(header, 0);
    let headerSize = 8;
    if (size === 1) {
      if (header.length < 16) return null;
      size = u64be(header, 8);
      headerSize = 16;
    } else if (size === 0) {
      size = file.size - offset;
    }
    if (size < headerSize) return null;
    if (ascii(header, 4, 'moov')) {
      // `mvhd` is moov's first child in what encoders write; it is looked for among the first few.
      const moov = await file.read(offset + headerSize, Math.min(size - headerSize, WINDOW_BYTES));
      return moov && mvhdDurationMs(moov);
    }
    offset += size;
  }
  return null;
}

function mvhdDurationMs(moov: Uint8Array): number | null {
  for (let at = 0; at + 8 <= moov.length;) {
    const size = u32be(moov, at);
    if (ascii(moov, at + 4, 'mvhd')) {
      const version = moov[at + 8];
      const timescale = version === 1 ? u32be(moov, at + 28) : u32be(moov, at + 20);
      const duration = version === 1 ? u64be(moov, at + 32) : u32be(moov, at + 24);
      // A fragmented file (Safari's MediaRecorder) states 0, and all ones means unknown.
      const unknown = duration === 0 || duration === 0xffffffff || duration === 2 ** 64 - 1;
      return timescale > 0 && !unknown ? milliseconds(duration / timescale) : null;
    }
    if (size < 8) return null;
    at += size;
  }
  return null;
}

// Matroska element ids (with their length marker bits, as written).
const SEGMENT = 0x18538067;
const SEGMENT_INFO = 0x1549a966;
const TIMECODE_SCALE = 0x2ad7b1;
const DURATION = 0x4489;
const CLUSTER = 0x1f43b675;
/** Elements looked at before giving up: Info comes before the first Cluster, near the start. */
const WEBM_MAX_ELEMENTS = 256;

/** A variable-length integer at `at`: its value (the marker bit kept for ids, dropped for sizes) and length; size all ones is "unknown". */
function vint(bytes: Uint8Array, at: number, keepMarker: boolean): { value: number; length: number; unknown: boolean } | null {
  const first = bytes[at];
  if (first === undefined || first === 0) return null;
  const length = Math.clz32(first) - 23;
  if (at + length > bytes.length || length > 8) return null;
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let index = 1; index < length; index++) {
    value = value * 256 + bytes[at + index]!;
    allOnes &&= bytes[at + index] === 0xff;
  }
  return { value, length, unknown: !keepMarker && allOnes };
}

async function webmDurationMs(file: FileWindow): Promise<number | null> {
  const bytes = await file.read(0, WINDOW_BYTES);
  if (!bytes) return null;
  let scale = 1_000_000;
  let duration: number | null = null;
  /** Where Segment Info ends, once entered: past it, nothing more is looked for. */
  let infoEnd = -1;
  let at = 0;
  for (let count = 0; count < WEBM_MAX_ELEMENTS && at < bytes.length; count++) {
    const id = vint(bytes, at, true);
    const size = id && vint(bytes, at + id.length, false);
    if (!id || !size) return null;
    const body = at + id.length + size.length;
    // The Segment and its Info are entered, not skipped (a live recording leaves the Segment's size unknown).
    if (id.value === SEGMENT || id.value === SEGMENT_INFO) {
      if (id.value === SEGMENT_INFO) infoEnd = size.unknown ? bytes.length : body + size.value;
      at = body;
      continue;
    }
    if (id.value === CLUSTER || size.unknown) break;
    if (body + size.value <= bytes.length) {
      if (id.value === TIMECODE_SCALE) scale = uintOf(bytes, body, size.value);
      if (id.value === DURATION) duration = floatOf(bytes, body, size.value);
    }
    at = body + size.value;
    if (infoEnd >= 0 && at >= infoEnd) break;
  }
  return duration === null || !scale ? null : milliseconds((duration * scale) / 1e9);
}

function uintOf(bytes: Uint8Array, at: number, length: number): number {
  let value = 0;
  for (let index = 0; index < length; index++) value = value * 256 + bytes[at + index]!;
  return value;
}

function floatOf(bytes: Uint8Array, at: number, length: number): number | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, length);
  if (length === 4) return view.getFloat32(0);
  if (length === 8) return view.getFloat64(0);
  return null;
}
