import { BlockList, isIP } from 'node:net';

/**
 * Where webhooks may not be sent: every address class that reaches this host, its networks or a
 * cloud's metadata service rather than the public internet. Checked on the addresses a host name
 * resolves to, right before connecting (see `safeLookup`), not only on the URL.
 */
const REFUSED: [label: string, subnets: [network: string, prefix: number][]][] = [
  [
    'unspecified',
    [
      ['0.0.0.0', 8],
      ['::', 128],
    ],
  ],
  [
    'loopback',
    [
      ['127.0.0.0', 8],
      ['::1', 128],
    ],
  ],
  [
    'private',
    [
      ['10.0.0.0', 8],
      ['172.16.0.0', 12],
      ['192.168.0.0', 16],
      ['fc00::', 7],
    ],
  ],
  // 100.100.100.200 (one cloud's metadata service) sits in the shared range; 169.254.169.254 in link-local.
  ['shared (carrier-grade NAT)', [['100.64.0.0', 10]]],
  [
    'link-local',
    [
      ['169.254.0.0', 16],
      ['fe80::', 10],
    ],
  ],
  [
    'reserved',
    [
      ['192.0.0.0', 24],
      ['192.0.2.0', 24],
      ['198.18.0.0', 15],
      ['198.51.100.0', 24],
      ['203.0.113.0', 24],
      ['240.0.0.0', 4],
      ['2001:db8::', 32],
      ['100::', 64],
    ],
  ],
  [
    'multicast',
    [
      ['224.0.0.0', 4],
      ['ff00::', 8],
    ],
  ],
];

const METADATA = new Set(['169.254.169.254', '100.100.100.200', 'fd00:ec2::254', '169.254.170.2']);

const lists = REFUSED.map(([label, subnets]) => {
  const list = new BlockList();
  for (const [network, prefix] of subnets) list.addSubnet(network, prefix, isIP(network) === 6 ? 'ipv6' : 'ipv4');
  return [label, list] as const;
});

/** The IPv4 address an IPv6 one carries (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::`, 6to4 `2002:`), if any. */
function embeddedIpv4(address: string): string | null {
  const words = expandIpv6(address);
  if (!words) return null;
  const v4 = (high: number, low: number) => `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  if (words.slice(0, 5).every((word) => word === 0) && words[5] === 0xffff) return v4(words[6]!, words[7]!);
  if (words[0] === 0x64 && words[1] === 0xff9b && words.slice(2, 6).every((word) => word === 0)) return v4(words[6]!, words[7]!);
  if (words[0] === 0x2002) return v4(words[1]!, words[2]!);
  return null;
}

/** An IPv6 address as its eight 16-bit words, or null when it is not one. */
function expandIpv6(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address.split('%')[0]!;
  // A trailing dotted IPv4 part becomes two words.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((word) => parseInt(word, 16)));
  const first = parse(head);
  const last = tail === undefined ? [] : parse(tail);
  return [...first, ...Array<number>(8 - first.length - last.length).fill(0), ...last];
}

/**
 * Why `address` (an IP literal) may not receive webhooks, or null when it is a public unicast address.
 * @example refusedAddressClass('169.254.169.254') // 'cloud metadata'
 * @example refusedAddressClass('93.184.216.34') // null
 */
export function refusedAddressClass(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  const bare = address.split('%')[0]!.toLowerCase();
  if (METADATA.has(bare)) return 'cloud metadata';
  if (family === 6) {
    const v4 = embeddedIpv4(bare);
    if (v4 !== null) return refusedAddressClass(v4);
  }
  for (const [label, list] of lists) if (list.check(bare, family === 6 ? 'ipv6' : 'ipv4')) return label;
  return null;
}

/** The reason a webhook URL is refused before any lookup (its scheme, its form, a literal address), or null. */
export function refusedUrl(raw: string, allowPrivate: boolean): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a valid URL';
  }
  if (url.protocol !== 'https:' && !(allowPrivate && url.protocol === 'http:')) return 'only https URLs are allowed';
  if (url.username || url.password) return 'credentials in the URL are not allowed';
  if (allowPrivate) return null;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) {
    const refused = refusedAddressClass(host);
    return refused ? `${host} is a ${refused} address` : null;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} is a loopback address`;
  return null;
}

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address it has (the system resolver by default). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** Refused by the address checks: the delivery is not sent, nor retried. */
export class RefusedAddressError extends Error {
  override name = 'RefusedAddressError';
}

/**
 * The address to connect to for `hostname`: it resolves, and every address it resolves to must be
 * public (unless `allowPrivate`), so a name with one private answer among public ones is refused
 * too. The connection is made to the address returned here, so a second lookup cannot swap it.
 */
export async function pickSafeAddress(hostname: string, resolve: Resolver, allowPrivate: boolean): Promise<ResolvedAddress> {
  const bare = hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(bare) ? [{ address: bare, family: isIP(bare) }] : await resolve(bare);
  if (addresses.length === 0) throw new RefusedAddressError(`${hostname} does not resolve`);
  if (!allowPrivate) {
    for (const { address } of addresses) {
      const refused = refusedAddressClass(address);
      if (refused) throw new RefusedAddressError(`${hostname} resolves to ${address}, a ${refused} address`);
    }
  }
  return addresses[0]!;
}
