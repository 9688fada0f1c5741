/** Small, well-formed file heads of each allowed type, with the sizes their headers state. */

const bytes = (...parts: (number[] | string | Uint8Array)[]) =>
  new Uint8Array(parts.flatMap((part) => (typeof part === 'string' ? [...Buffer.from(part, 'latin1')] : [...part])));
const u16be = (n: number) => [n >> 8, n & 0xff];
const u16le = (n: number) => [n & 0xff, n >> 8];
const u32be = (n: number) => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
const u32le = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
const u24le = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff];

/** `size` bytes of filler after a head: the rest of the file, whose content the server never reads. */
const padded = (head: Uint8Array, size: number) => {
  const file = new Uint8Array(Math.max(size, head.length));
  file.set(head);
  return file;
};

const u64be = (n: number) => [...u32be(Math.floor(n / 2 ** 32)), ...u32be(n % 2 ** 32)];
const f64be = (n: number) => {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, n);
  return [...bytes];
};

/** An Ogg page carrying one packet (no CRC: the server never checks it); a granule of -1 says no packet ends on it. */
const oggPage = (granule: number, serial: number, seq: number, packet: Uint8Array, headerType = 0) => {
  const lacing = [...(Array(Math.floor(packet.length / 255)).fill(255) as number[]), packet.length % 255];
  const granuleBytes = granule < 0 ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : [...u32le(granule % 2 ** 32), ...u32le(Math.floor(granule / 2 ** 32))];
  return bytes('OggS', [0, headerType], granuleBytes, u32le(serial), u32le(seq), u32le(0), [lacing.length], lacing, packet);
};

/** An Ogg stream: its identification packet, then `fillerBytes` of audio pages, then a last page at `lastGranule`. */
const oggStream = (identification: Uint8Array, lastGranule: number, fillerBytes: number) => {
  const serial = 0x1234;
  const pages = [oggPage(0, serial, 0, identification, 2), oggPage(0, serial, 1, bytes('OpusTags', u32le(0), u32le(0)))];
  for (let left = fillerBytes, seq = 2; left > 0; left -= 60_000, seq++)
    pages.push(oggPage(seq === 2 ? -1 : seq * 960, serial, seq, new Uint8Array(Math.min(left, 60_000))));
  pages.push(oggPage(lastGranule, serial, pages.length, new Uint8Array(100), 4));
  return bytes(...pages);
};

/** An ISO base media box. */
const box = (type: string, ...content: (number[] | string | Uint8Array)[]) => {
  const body = bytes(...content);
  return bytes(u32be(8 + body.length), type, body);
};
const mvhd = (timescale: number, duration: number, version = 0) =>
  version === 0
    ? box('mvhd', [0, 0, 0, 0], u32be(0), u32be(0), u32be(timescale), u32be(duration), new Uint8Array(80))
    : box('mvhd', [1, 0, 0, 0], u64be(0), u64be(0), u32be(timescale), u64be(duration), new Uint8Array(80));

/** An MPEG-1 layer III frame header: 128 kbit/s, 44.1 kHz, stereo (32 bytes of side information follow). */
const MP3_FRAME = [0xff, 0xfb, 0x90, 0x00];

/** Matroska: an element of a one-byte-length size (enough for these fixtures). */
const ebml = (id: number[], ...content: (number[] | string | Uint8Array)[]) => {
  const body = bytes(...content);
  return bytes(id, [0x80 | body.length], body);
};

export const media = {
  png: (width = 640, height = 480, size = 200) =>
    padded(bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], u32be(13), 'IHDR', u32be(width), u32be(height), [8, 6, 0, 0, 0]), size),
  /** An APP0 segment, then a baseline start of frame. */
  jpeg: (width = 800, height = 600, size = 200) =>
    padded(
      bytes([0xff, 0xd8], [0xff, 0xe0], u16be(16), 'JFIF\0', [1, 1, 0, 0, 1, 0, 1, 0, 0], [0xff, 0xc0], u16be(17), [8], u16be(height), u16be(width), [3]),
      size,
    ),
  gif: (width = 32, height = 16, size = 100) => padded(bytes('GIF89a', u16le(width), u16le(height), [0, 0, 0]), size),
  webp: (width = 1024, height = 768, size = 100) =>
    padded(bytes('RIFF', u32le(size - 8), 'WEBP', 'VP8X', u32le(10), [0, 0, 0, 0], u24le(width - 1), u24le(height - 1)), size),
  /** 16-bit mono PCM at 8 kHz: 16,000 bytes a second. */
  wav: (durationMs = 1500) => {
    const dataSize = (durationMs * 16_000) / 1000;
    return padded(
      bytes(
        'RIFF',
        u32le(36 + dataSize),
        'WAVE',
        'fmt ',
        u32le(16),
        u16le(1),
        u16le(1),
        u32le(8000),
        u32le(16_000),
        u16le(2),
        u16le(16),
        'data',
        u32le(dataSize),
      ),
      44 + dataSize,
    );
  },
  ogg: (size = 300) => padded(bytes('OggS', [0, 2], new Uint8Array(22), 'OpusHead'), size),
  webm: (size = 300) => padded(bytes([0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x84], 'webm'), size),
  mp3: (size = 300) => padded(bytes([0xff, 0xfb, 0x90, 0x64]), size),
  mp3WithTag: (size = 300) => padded(bytes('ID3', [4, 0, 0, 0, 0, 0, 0]), size),
  m4a: (size = 300) => padded(bytes(u32be(24), 'ftyp', 'M4A ', u32be(0), 'M4A isom'), size),
  /** Ogg/Opus at 48 kHz: its last page's granule is the pre-skip plus the duration's samples; `fillerBytes` push the end past the head. */
  oggOpus: ({ durationMs = 1500, preSkip = 312, fillerBytes = 0 } = {}) =>
    oggStream(bytes('OpusHead', [1, 2], u16le(preSkip), u32le(48_000), [0, 0, 0]), preSkip + durationMs * 48, fillerBytes),
  oggVorbis: ({ durationMs = 2000, rate = 44_100, fillerBytes = 0 } = {}) =>
    oggStream(bytes([1], 'vorbis', u32le(0), [2], u32le(rate), new Uint8Array(12), [0xb8, 1]), (durationMs * rate) / 1000, fillerBytes),
  /** A VBR MP3 stating its frame count in a Xing (or, `info`, a CBR encoder's Info) header; an ID3 tag of `tagBytes` before it. */
  mp3Xing: ({ frames = 1000, tagBytes = 0, info = false, size = 2000 } = {}) => {
    const tag = tagBytes
      ? bytes('ID3', [4, 0, 0], [(tagBytes >> 21) & 0x7f, (tagBytes >> 14) & 0x7f, (tagBytes >> 7) & 0x7f, tagBytes & 0x7f], new Uint8Array(tagBytes))
      : bytes();
    return padded(bytes(tag, MP3_FRAME, new Uint8Array(32), info ? 'Info' : 'Xing', u32be(1), u32be(frames)), size + tag.length);
  },
  mp3Vbri: ({ frames = 500, size = 2000 } = {}) =>
    padded(bytes(MP3_FRAME, new Uint8Array(32), 'VBRI', u16be(1), u16be(0), u16be(75), u32be(size), u32be(frames)), size),
  /** M4A with its `moov` before the media data, or after it (as recorders write it) behind a large `mdat`, with a 64-bit size when `largeSize`. */
  m4aWithDuration: ({ timescale = 44_100, duration = 44_100 * 3, moovLast = false, mdatBytes = 1000, version = 0, largeSize = false } = {}) => {
    const ftyp = box('ftyp', 'M4A ', u32be(0), 'M4A isom');
    const moov = box('moov', mvhd(timescale, duration, version), box('trak', new Uint8Array(40)));
    const mdat = largeSize ? bytes(u32be(1), 'mdat', u64be(16 + mdatBytes), new Uint8Array(mdatBytes)) : box('mdat', new Uint8Array(mdatBytes));
    return moovLast ? bytes(ftyp, mdat, moov) : bytes(ftyp, moov, mdat);
  },
  /** WebM as MediaRecorder writes it (a Segment of unknown size); its Info states a Duration only when given one, in TimecodeScale units. */
  webmRecorded: ({ duration = null as number | null, timecodeScale = 1_000_000 } = {}) => {
    const header = ebml([0x1a, 0x45, 0xdf, 0xa3], ebml([0x42, 0x82], 'webm'));
    const info = ebml(
      [0x15, 0x49, 0xa9, 0x66],
      ebml([0x2a, 0xd7, 0xb1], u32be(timecodeScale)),
      duration === null ? bytes() : ebml([0x44, 0x89], f64be(duration)),
      ebml([0x4d, 0x80], 'test muxer'),
    );
    const cluster = ebml([0x1f, 0x43, 0xb6, 0x75], ebml([0xe7], [0]));
    return bytes(
      header,
      [0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      ebml([0x11, 0x4d, 0x9b, 0x74], new Uint8Array(20)),
      info,
      cluster,
    );
  },
  pdf: (size = 300) => padded(bytes('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n'), size),
  text: (text = 'Meeting notes: ship on Friday.\n') => new TextEncoder().encode(text),
  svg: () => new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
  exe: () => padded(bytes('MZ', [0x90, 0, 3, 0]), 200),
};
