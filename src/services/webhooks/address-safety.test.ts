import { describe, expect, test } from 'bun:test';
import { pickSafeAddress, refusedAddressClass, refusedUrl } from './address-safety';

describe('refusedAddressClass', () => {
  test.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fd12:3456::1', 'private'],
    ['100.64.0.1', 'shared (carrier-grade NAT)'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['169.254.169.254', 'cloud metadata'],
    ['fd00:ec2::254', 'cloud metadata'],
    ['100.100.100.200', 'cloud metadata'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['192.0.2.10', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'cloud metadata'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['2002:c0a8:0101::1', 'private'],
  ])('%s is refused as %s', (address, label) => {
    expect(refusedAddressClass(address)).toBe(label);
  });

  test.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8'])('%s is public', (address) => {
    expect(refusedAddressClass(address)).toBeNull();
  });
});

describe('refusedUrl', () => {
  test('only https, unless private addresses are allowed, which also allows http', () => {
    expect(refusedUrl('http://example.com/hook', false)).toBe('only https URLs are allowed');
    expect(refusedUrl('ftp://example.com/hook', true)).toBe('only https URLs are allowed');
    expect(refusedUrl('https://example.com/hook', false)).toBeNull();
    expect(refusedUrl('http://127.0.0.1:8080/hook', true)).toBeNull();
  });

  test('literal addresses and localhost are refused before any lookup', () => {
    expect(refusedUrl('https://127.0.0.1/hook', false)).toBe('127.0.0.1 is a loopback address');
    expect(refusedUrl('https://[::1]/hook', false)).toBe('::1 is a loopback address');
    expect(refusedUrl('https://169.254.169.254/latest', false)).toBe('169.254.169.254 is a cloud metadata address');
    expect(refusedUrl('https://localhost/hook', false)).toBe('localhost is a loopback address');
    expect(refusedUrl('https://user:pw@example.com/', false)).toBe('credentials in the URL are not allowed');
    expect(refusedUrl('not a url', false)).toBe('not a valid URL');
  });
});

describe('pickSafeAddress', () => {
  const resolver = (answers: Record<string, string[]>) => (host: string) =>
    Promise.resolve((answers[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => 'accepted',
      (error: Error) => error.message,
    );

  test('a name is checked on every address it resolves to', async () => {
    const resolve = resolver({ 'public.test': ['93.184.216.34'], 'rebind.test': ['93.184.216.34', '10.0.0.5'], 'meta.test': ['169.254.169.254'] });
    expect(await pickSafeAddress('public.test', resolve, false)).toEqual({ address: '93.184.216.34', family: 4 });
    expect(await refusal(pickSafeAddress('rebind.test', resolve, false))).toBe('rebind.test resolves to 10.0.0.5, a private address');
    expect(await refusal(pickSafeAddress('meta.test', resolve, false))).toBe('meta.test resolves to 169.254.169.254, a cloud metadata address');
    expect(await refusal(pickSafeAddress('nowhere.test', resolve, false))).toBe('nowhere.test does not resolve');
  });

  test('WEBHOOK_ALLOW_PRIVATE lets private answers through', async () => {
    const resolve = resolver({ 'intranet.test': ['10.0.0.5'] });
    expect(await pickSafeAddress('intranet.test', resolve, true)).toEqual({ address: '10.0.0.5', family: 4 });
  });
});
