import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClientAddresses } from '../../../src/channels/client-address.ts';
import { canonicalAddress, formatAddress } from '../../../src/util/ip-address.ts';

function resolver(trusted: string[] = [], forwarded_header: 'x-forwarded-for' | 'forwarded' = 'x-forwarded-for') {
  return new ClientAddresses({ trusted_proxies: trusted, forwarded_header });
}

const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(formatAddress);
const anyAddress = fc.oneof(fc.ipV4(), v6);

describe('ClientAddresses without trusted proxies', () => {
  it('is the socket peer, in canonical text, whatever the headers say', () => {
    fc.assert(
      fc.property(anyAddress, fc.string(), fc.string(), (peer, xff, forwarded) => {
        expect(resolver().resolve(peer, { 'x-forwarded-for': xff, forwarded })).toBe(canonicalAddress(peer));
        // Nor from a peer outside the trusted ranges.
        expect(resolver(['10.0.0.0/8']).resolve(peer.startsWith('10.') ? '11.0.0.1' : peer, { 'x-forwarded-for': xff })).toBe(
          canonicalAddress(peer.startsWith('10.') ? '11.0.0.1' : peer),
        );
      }),
    );
    expect(resolver().resolve('127.0.0.1', { 'x-forwarded-for': '6.6.6.6' })).toBe('127.0.0.1');
    expect(resolver().resolve('::ffff:127.0.0.1', {})).toBe('127.0.0.1');
    expect(resolver().resolve('2001:DB8::0001', {})).toBe('2001:db8::1');
  });

  it('has no address for a connection without one, and never throws', () => {
    expect(resolver().resolve(undefined, {})).toBeUndefined();
    expect(resolver(['10.0.0.0/8']).resolve(undefined, { 'x-forwarded-for': '1.2.3.4' })).toBeUndefined();
    expect(resolver().resolve('', {})).toBeUndefined();
  });
});

describe('ClientAddresses behind trusted proxies', () => {
  const proxies = resolver(['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8']);

  it('takes the right-most untrusted hop of X-Forwarded-For', () => {
    expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': '203.0.113.5' })).toBe('203.0.113.5');
    expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 203.0.113.5, 10.1.1.1, 10.2.2.2' })).toBe('203.0.113.5');
    expect(proxies.resolve('::ffff:127.0.0.1', { 'x-forwarded-for': '2001:DB8::7' })).toBe('2001:db8::7');
    expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': '[2001:db8::7]:4711, 198.51.100.2:80' })).toBe('198.51.100.2');
  });

  it('stops at a hop that is no address: the proxy that wrote it stands for the client', () => {
    expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': '203.0.113.5, unknown' })).toBe('127.0.0.1');
    expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': '203.0.113.5, unknown, 10.0.0.9' })).toBe('10.0.0.9');
    expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': '' })).toBe('127.0.0.1');
  });

  it('is the left-most hop when every hop is a trusted proxy', () => {
    expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': '10.0.0.1, 10.0.0.2' })).toBe('10.0.0.1');
  });

  it('ignores the header from a peer that is no trusted proxy', () => {
    expect(proxies.resolve('198.51.100.77', { 'x-forwarded-for': '203.0.113.5' })).toBe('198.51.100.77');
  });

  it('reads only the header it was told to: a client cannot add the other one', () => {
    const headers = { 'x-forwarded-for': '203.0.113.5', forwarded: 'for=6.6.6.6' };
    expect(proxies.resolve('127.0.0.1', headers)).toBe('203.0.113.5');
    expect(resolver(['127.0.0.1'], 'forwarded').resolve('127.0.0.1', headers)).toBe('6.6.6.6');
  });

  it('reads RFC 7239 Forwarded: quoted values, ports, brackets, several elements and parameters', () => {
    const forwarded = resolver(['127.0.0.1', '10.0.0.0/8'], 'forwarded');
    const cases: [string, string][] = [
      ['for=192.0.2.60;proto=http;by=203.0.113.43', '192.0.2.60'],
      ['for="[2001:db8:cafe::17]:4711"', '2001:db8:cafe::17'],
      ['For="192.0.2.43:47011", for=10.1.2.3', '192.0.2.43'],
      ['for=198.51.100.9, for="_hidden"', '127.0.0.1'],
      ['proto=https;for="[2001:db8::1]";by=x, for=10.0.0.1', '2001:db8::1'],
      ['by=10.0.0.1', '127.0.0.1'],
      ['for="[1.2.3.4]"', '127.0.0.1'],
    ];
    for (const [header, client] of cases) expect([header, forwarded.resolve('127.0.0.1', { forwarded: header })]).toEqual([header, client]);
  });

  it('finds the client however many made-up hops come before it and however many proxies after', () => {
    const bytes = fc.uint8Array({ minLength: 16, maxLength: 16 });
    const client = fc.oneof(
      fc.ipV4().filter((a) => !a.startsWith('10.') && a !== '127.0.0.1'),
      bytes.filter((b) => b[0] !== 0xfd && !(b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)).map(formatAddress),
    );
    const proxy = fc.oneof(
      fc.ipV4().map((a) => `10.${a.split('.').slice(1).join('.')}`),
      bytes.map((b) => formatAddress(Uint8Array.from([0xfd, ...b.subarray(1)]))),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string(), anyAddress), { maxLength: 5 }), client, fc.array(proxy, { maxLength: 4 }), (spoofed, real, chain) => {
        const header = [...spoofed.map((s) => s.replace(/,/g, '')), real, ...chain].join(', ');
        expect(proxies.resolve('127.0.0.1', { 'x-forwarded-for': header })).toBe(canonicalAddress(real));
      }),
      { numRuns: 1_000 },
    );
  });

  it('never throws, whatever the headers hold', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (xff, forwarded) => {
        const answer = proxies.resolve('127.0.0.1', { 'x-forwarded-for': xff, forwarded });
        expect(typeof answer).toBe('string');
        resolver(['127.0.0.1'], 'forwarded').resolve('127.0.0.1', { forwarded });
      }),
      { numRuns: 2_000 },
    );
  });
});
