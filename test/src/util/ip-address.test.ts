import fc from 'fast-check';
import { BlockList, isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { AddressList, addressPrefix, canonicalAddress, formatAddress, parseAddress, parseRange } from '../../../src/util/ip-address.ts';

/** Strings made of what addresses are made of, so that near misses are common. */
const addressLike = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.'.split('')), maxLength: 45 });

const v6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 });

/** The WHATWG URL parser's IPv6 serialisation (RFC 5952's rules), as an independent judge. */
function urlCanonical(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

function isMapped(bytes: Uint8Array): boolean {
  return bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}

describe('parseAddress', () => {
  it('accepts exactly what node:net calls an IP address', () => {
    fc.assert(
      fc.property(fc.oneof(addressLike, fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (text) => {
        expect(parseAddress(text) !== undefined).toBe(isIP(text) !== 0);
      }),
      { numRuns: 5_000 },
    );
  });

  it('reads IPv4 as 4 bytes and IPv4-mapped IPv6 as the same 4 bytes', () => {
    expect([...parseAddress('192.0.2.1')!]).toEqual([192, 0, 2, 1]);
    expect([...parseAddress('::ffff:192.0.2.1')!]).toEqual([192, 0, 2, 1]);
    expect([...parseAddress('::FFFF:c000:0201')!]).toEqual([192, 0, 2, 1]);
    // IPv4-compatible (not mapped) stays IPv6.
    expect(parseAddress('::192.0.2.1')!.length).toBe(16);
  });

  it('drops a zone index', () => {
    expect(canonicalAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(parseAddress('fe80::1%')).toBeUndefined();
  });

  it('refuses near misses', () => {
    for (const text of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.0.0.1', '1..2.3', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', ':1::', '1::2:', 'g::1', ' 1.2.3.4']) {
      expect([text, parseAddress(text)]).toEqual([text, undefined]);
    }
  });
});

describe('formatAddress', () => {
  it('writes IPv6 as RFC 5952 does (the URL standard agrees), and reads back the same bytes', () => {
    fc.assert(
      fc.property(v6Bytes, (bytes) => {
        fc.pre(!isMapped(bytes));
        const text = formatAddress(bytes);
        expect(text).toBe(urlCanonical(text));
        expect([...parseAddress(text)!]).toEqual([...bytes]);
      }),
      { numRuns: 2_000 },
    );
  });

  it('gives one spelling per address, whatever spelling came in', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const canonical = canonicalAddress(text)!;
        expect(canonicalAddress(canonical)).toBe(canonical);
        expect(canonicalAddress(text.toUpperCase())).toBe(canonical);
      }),
    );
    expect(canonicalAddress('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalAddress('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
  });
});

describe('AddressList', () => {
  /** A random range in both notations: ours, and node:net's BlockList (the judge). */
  const range = fc.oneof(
    fc.record({ address: fc.ipV4(), bits: fc.integer({ min: 0, max: 32 }), family: fc.constant('ipv4' as const) }),
    fc.record({
      address: v6Bytes.filter((b) => !isMapped(b)).map(formatAddress),
      bits: fc.integer({ min: 0, max: 128 }),
      family: fc.constant('ipv6' as const),
    }),
  );

  it('matches what node:net BlockList matches, for ranges and addresses of both families', () => {
    fc.assert(
      fc.property(fc.array(range, { minLength: 1, maxLength: 4 }), fc.oneof(fc.ipV4(), v6Bytes.map(formatAddress)), (ranges, address) => {
        const bytes = parseAddress(address)!;
        const family = bytes.length === 4 ? 'ipv4' : 'ipv6';
        // A range holds addresses of its own family only (BlockList would also let ::/0 hold every IPv4 address).
        const judge = new BlockList();
        for (const r of ranges) if (r.family === family) judge.addSubnet(r.address, r.bits, r.family);
        const list = AddressList.of(ranges.map((r) => `${r.address}/${r.bits}`));
        expect(list.has(address)).toBe(judge.check(formatAddress(bytes), family));
      }),
      { numRuns: 3_000 },
    );
  });

  it('always holds the addresses of its own ranges', () => {
    fc.assert(
      fc.property(range, ({ address, bits }) => {
        expect(AddressList.of([`${address}/${bits}`]).has(address)).toBe(true);
      }),
    );
  });

  it('treats IPv4-mapped addresses and ranges as IPv4', () => {
    const list = AddressList.of(['::ffff:10.0.0.0/104', '192.0.2.7']);
    expect(list.has('10.200.3.4')).toBe(true);
    expect(list.has('::ffff:10.200.3.4')).toBe(true);
    expect(list.has('::ffff:192.0.2.7')).toBe(true);
    expect(list.has('11.0.0.1')).toBe(false);
    expect(list.has('not an address')).toBe(false);
  });

  it('names what is wrong with each bad entry, by index', () => {
    const { problems } = AddressList.parse(['10.0.0.0/8', '10.0.0.0/33', 'example.com', '::ffff:0:0/64', '2001:db8::/x']);
    expect(problems).toEqual([
      { index: 1, problem: '"10.0.0.0/33": the prefix length must be a whole number from 0 to 32' },
      { index: 2, problem: '"example.com" is not an IP address or CIDR range (e.g. "10.0.0.0/8", "2001:db8::/32")' },
      { index: 3, problem: '"::ffff:0:0/64": an IPv4-mapped range must be /96 or longer' },
      { index: 4, problem: '"2001:db8::/x": the prefix length must be a whole number from 0 to 128' },
    ]);
    expect(parseRange('10.1.2.3/8')).toEqual({ bytes: Uint8Array.from([10, 0, 0, 0]), bits: 8 });
  });
});

describe('addressPrefix', () => {
  it('groups IPv6 addresses by their first bits, IPv4 addresses each on their own', () => {
    expect(addressPrefix(parseAddress('2001:db8:1:2:aaaa::1')!, 64)).toBe('2001:db8:1:2::/64');
    expect(addressPrefix(parseAddress('2001:db8:1:2:ffff:ffff:ffff:ffff')!, 64)).toBe('2001:db8:1:2::/64');
    expect(addressPrefix(parseAddress('2001:db8:1:3::1')!, 64)).toBe('2001:db8:1:3::/64');
    expect(addressPrefix(parseAddress('2001:db8:1:3::1')!, 128)).toBe('2001:db8:1:3::1');
    expect(addressPrefix(parseAddress('203.0.113.9')!, 64)).toBe('203.0.113.9');
    expect(addressPrefix(parseAddress('203.0.113.9')!, 64, 24)).toBe('203.0.113.0/24');
  });

  it('puts two addresses in one group exactly when their first bits agree', () => {
    fc.assert(
      fc.property(v6Bytes, v6Bytes, fc.integer({ min: 1, max: 128 }), (a, b, bits) => {
        fc.pre(!isMapped(a) && !isMapped(b));
        const agree = AddressList.of([`${formatAddress(a)}/${bits}`]).has(b);
        expect(addressPrefix(a, bits) === addressPrefix(b, bits)).toBe(agree);
      }),
      { numRuns: 2_000 },
    );
  });
});
