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
  pdf: (size = 300) => padded(bytes('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n'), size),
  text: (text = 'Meeting notes: ship on Friday.\n') => new TextEncoder().encode(text),
  svg: () => new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
  exe: () => padded(bytes('MZ', [0x90, 0, 3, 0]), 200),
};
