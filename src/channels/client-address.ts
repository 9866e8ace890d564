import type { IncomingHttpHeaders } from 'node:http';
import { AddressList, formatAddress, parseAddress, type AddressBytes } from '../util/ip-address.ts';

/** The headers a proxy may say who its client was in. */
export const FORWARDED_HEADERS = ['x-forwarded-for', 'forwarded'] as const;
export type ForwardedHeader = (typeof FORWARDED_HEADERS)[number];

export interface ClientAddressOptions {
  /** Peers (CIDR ranges) whose forwarded header is believed. */
  trusted_proxies: readonly string[];
  /** Which header they write. */
  forwarded_header: ForwardedHeader;
}

/** Most hops of a forwarded header looked at: a proxy chain is a few hops, a longer header is a client's. */
const MAX_HOPS = 32;

/**
 * One hop of `X-Forwarded-For` or of a `Forwarded` element's `for=`: an address, perhaps with a port
 * (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or in brackets; undefined for anything else (`unknown`,
 * an obfuscated `_hidden`, garbage).
 */
function hopAddress(raw: string): AddressBytes | undefined {
  let text = raw.trim();
  if (text.length >= 2 && text.charCodeAt(0) === 34 && text.charCodeAt(text.length - 1) === 34) text = text.slice(1, -1);
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return undefined;
    const rest = text.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    // Brackets hold IPv6 only.
    const inner = text.slice(1, close);
    return inner.includes(':') ? parseAddress(inner) : undefined;
  }
  const colon = text.indexOf(':');
  if (colon !== -1 && colon === text.lastIndexOf(':')) {
    // One colon: IPv4 with a port.
    if (!/^\d{1,5}$/.test(text.slice(colon + 1))) return undefined;
    text = text.slice(0, colon);
  }
  return parseAddress(text);
}

/** `X-Forwarded-For: client, proxy1, proxy2` as its hops, left to right. */
function forwardedForHops(header: string): string[] {
  return header.split(',');
}

/**
 * RFC 7239 `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"` as the `for=` of each
 * element, left to right (an element without one is an empty hop, which ends the walk).
 */
function forwardedHops(header: string): string[] {
  const hops: string[] = [];
  let element = '';
  let quoted = false;
  const finish = () => {
    let found = '';
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq !== -1 && pair.slice(0, eq).trim().toLowerCase() === 'for') found = pair.slice(eq + 1);
    }
    hops.push(found);
    element = '';
  };
  for (let i = 0; i < header.length; i++) {
    const c = header[i]!;
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) finish();
    else element += c;
  }
  finish();
  return hops;
}

/**
 * Who a request comes from. The socket's peer, unless that peer is a trusted proxy: then the
 * right-most hop of the forwarded header that is not a trusted proxy (each proxy appends the peer it
 * got the request from, so everything left of the first untrusted hop may be made up by the client).
 * A forwarded header from any other peer is ignored: a client cannot pick a fresh address per request.
 */
export class ClientAddresses {
  private readonly trusted: AddressList;
  private readonly header: ForwardedHeader;

  constructor(options: ClientAddressOptions) {
    this.trusted = AddressList.of(options.trusted_proxies);
    this.header = options.forwarded_header;
  }

  /**
   * The client's address in canonical text (IPv4-mapped IPv6 as IPv4), or undefined when the
   * connection has none (it closed before the request was looked at).
   */
  resolve(peer: string | undefined, headers: IncomingHttpHeaders): string | undefined {
    if (peer === undefined || peer === '') return undefined;
    if (this.trusted.size === 0) return canonicalPeer(peer);
    const bytes = parseAddress(peer);
    if (bytes === undefined) return undefined;
    if (!this.trusted.has(bytes)) return formatAddress(bytes);
    const header = headers[this.header];
    if (typeof header !== 'string' || header === '') return formatAddress(bytes);
    const hops = this.header === 'forwarded' ? forwardedHops(header) : forwardedForHops(header);
    let client = bytes;
    for (let i = hops.length - 1, seen = 0; i >= 0 && seen < MAX_HOPS; i--, seen++) {
      const hop = hopAddress(hops[i]!);
      // A hop that is no address ends the walk: the proxy that wrote it stands for the client.
      if (hop === undefined) break;
      client = hop;
      if (!this.trusted.has(hop)) break;
    }
    return formatAddress(client);
  }
}

/** A socket's peer as canonical text; the kernel's IPv4 text already is. */
function canonicalPeer(peer: string): string | undefined {
  if (peer.indexOf(':') === -1) return peer;
  const bytes = parseAddress(peer);
  return bytes === undefined ? undefined : formatAddress(bytes);
}
