/**
 * IP addresses and ranges as bytes: parsing, canonical text, CIDR lists and prefixes. IPv4-mapped
 * IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an IPv4 peer) are IPv4
 * here, everywhere: one client never has two spellings.
 */

/** 4 bytes (IPv4) or 16 (IPv6). */
export type AddressBytes = Uint8Array;

const DOT = 46;
const COLON = 58;

/** Dotted-quad IPv4 (no leading zeros, as `net.isIPv4` takes it) into `out` at `offset`. */
function parseIPv4Into(text: string, start: number, out: Uint8Array, offset: number): boolean {
  let part = 0;
  let digits = 0;
  let index = 0;
  for (let i = start; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (digits === 0 || index > 3) return false;
      out[offset + index++] = part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return false;
      part = part * 10 + (c - 48);
      digits++;
      if (part > 255) return false;
    } else {
      return false;
    }
  }
  return index === 4;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** RFC 4291 text (with `::`, an embedded IPv4 tail, a `%zone` that is dropped) as 16 bytes. */
function parseIPv6(raw: string): AddressBytes | undefined {
  const zone = raw.indexOf('%');
  if (zone === 0 || zone === raw.length - 1) return undefined;
  const text = zone === -1 ? raw : raw.slice(0, zone);
  const n = text.length;
  if (n < 2) return undefined;
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === COLON) {
    if (text.charCodeAt(1) !== COLON) return undefined;
    gap = 0;
    i = 2;
  }
  const tail = new Uint8Array(4);
  while (i < n) {
    const start = i;
    let value = 0;
    let h: number;
    while (i < n && (h = hexValue(text.charCodeAt(i))) !== -1) {
      value = value * 16 + h;
      i++;
    }
    if (i < n && text.charCodeAt(i) === DOT) {
      // The last 32 bits written as IPv4: nothing may follow it.
      if (!parseIPv4Into(text, start, tail, 0)) return undefined;
      groups.push((tail[0]! << 8) | tail[1]!, (tail[2]! << 8) | tail[3]!);
      i = n;
      break;
    }
    const length = i - start;
    if (length === 0 || length > 4) return undefined;
    groups.push(value);
    if (i === n) break;
    if (text.charCodeAt(i) !== COLON) return undefined;
    i++;
    if (i < n && text.charCodeAt(i) === COLON) {
      if (gap !== -1) return undefined;
      gap = groups.length;
      i++;
    } else if (i === n) {
      return undefined;
    }
  }
  if (gap === -1 ? groups.length !== 8 : groups.length > 7) return undefined;
  const bytes = new Uint8Array(16);
  const zeros = 8 - groups.length;
  for (let g = 0, at = 0; g < groups.length; g++, at++) {
    if (g === gap) at += zeros;
    bytes[at * 2] = groups[g]! >> 8;
    bytes[at * 2 + 1] = groups[g]! & 0xff;
  }
  return bytes;
}

/** Whether 16 bytes are `::ffff:a.b.c.d`. */
function isMapped(bytes: AddressBytes): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** An IPv4 or IPv6 address as bytes (IPv4-mapped IPv6 as its 4 IPv4 bytes), or undefined if `text` is none. */
export function parseAddress(text: string): AddressBytes | undefined {
  if (text.indexOf(':') === -1) {
    const bytes = new Uint8Array(4);
    return parseIPv4Into(text, 0, bytes, 0) ? bytes : undefined;
  }
  const bytes = parseIPv6(text);
  if (bytes === undefined) return undefined;
  return isMapped(bytes) ? bytes.subarray(12) : bytes;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, the longest run of zero groups as `::`). */
export function formatAddress(bytes: AddressBytes): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  // The first longest run of two or more zero groups.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (bytes[i * 2] !== 0 || bytes[i * 2 + 1] !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < 8 && bytes[j * 2] === 0 && bytes[j * 2 + 1] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  let text = '';
  let colon = false;
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      colon = false;
      i += bestLength - 1;
      continue;
    }
    if (colon) text += ':';
    text += ((bytes[i * 2]! << 8) | bytes[i * 2 + 1]!).toString(16);
    colon = true;
  }
  return text;
}

/** The canonical text of an address, or undefined when `text` is not one. */
export function canonicalAddress(text: string): string | undefined {
  const bytes = parseAddress(text);
  return bytes === undefined ? undefined : formatAddress(bytes);
}

/** `bytes` with every bit past the first `bits` cleared (a copy). */
function masked(bytes: AddressBytes, bits: number): AddressBytes {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = bits - i * 8;
    if (keep >= 8) continue;
    out[i] = keep <= 0 ? 0 : out[i]! & (0xff << (8 - keep));
  }
  return out;
}

/**
 * The group an address counts in: an IPv4 address itself (or its `/ipv4Bits` network), an IPv6
 * address's `/ipv6Bits` network, written `2001:db8:1:2::/64` (a whole prefix is one subscriber).
 */
export function addressPrefix(bytes: AddressBytes, ipv6Bits: number, ipv4Bits = 32): string {
  const bits = bytes.length === 4 ? ipv4Bits : ipv6Bits;
  const full = bytes.length * 8;
  if (bits >= full) return formatAddress(bytes);
  return `${formatAddress(masked(bytes, bits))}/${bits}`;
}

/** A parsed CIDR range. */
export interface AddressRange {
  bytes: AddressBytes;
  bits: number;
}

/**
 * `10.0.0.0/8`, `2001:db8::/32`, or a single address (all its bits). Host bits past the prefix are
 * ignored. An IPv4-mapped range (`::ffff:10.0.0.0/104`) is the IPv4 range it maps. Returns what is
 * wrong instead when `text` is no range.
 */
export function parseRange(text: string): AddressRange | { problem: string } {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const raw = address.indexOf(':') === -1 ? parseAddress(address) : parseIPv6(address);
  if (raw === undefined) return { problem: `${JSON.stringify(text)} is not an IP address or CIDR range (e.g. "10.0.0.0/8", "2001:db8::/32")` };
  const full = raw.length * 8;
  let bits = full;
  if (slash !== -1) {
    const suffix = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(suffix) || Number(suffix) > full) {
      return { problem: `${JSON.stringify(text)}: the prefix length must be a whole number from 0 to ${full}` };
    }
    bits = Number(suffix);
  }
  if (isMapped(raw)) {
    if (bits < 96) return { problem: `${JSON.stringify(text)}: an IPv4-mapped range must be /96 or longer` };
    return { bytes: masked(raw.subarray(12), bits - 96), bits: bits - 96 };
  }
  return { bytes: masked(raw, bits), bits };
}

function inRange(range: AddressRange, bytes: AddressBytes): boolean {
  if (range.bytes.length !== bytes.length) return false;
  const { bits } = range;
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (range.bytes[i] !== bytes[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = 0xff << (8 - rest);
  return (bytes[whole]! & mask) === range.bytes[whole];
}

/** A list of CIDR ranges, matched against addresses (a handful of ranges: a scan is the fastest). */
export class AddressList {
  private constructor(private readonly ranges: readonly AddressRange[]) {}

  /** The ranges of `texts`, or every entry that is no range, each with what is wrong, by index. */
  static parse(texts: readonly string[]): { list: AddressList; problems: { index: number; problem: string }[] } {
    const ranges: AddressRange[] = [];
    const problems: { index: number; problem: string }[] = [];
    texts.forEach((text, index) => {
      const range = parseRange(text.trim());
      if ('problem' in range) problems.push({ index, problem: range.problem });
      else ranges.push(range);
    });
    return { list: new AddressList(ranges), problems };
  }

  /** A list of ranges known to be valid (throws on the first that is not). */
  static of(texts: readonly string[]): AddressList {
    const { list, problems } = AddressList.parse(texts);
    if (problems.length > 0) throw new RangeError(problems[0]!.problem);
    return list;
  }

  get size(): number {
    return this.ranges.length;
  }

  /** Whether the address falls in any range; text that is no address falls in none. */
  has(address: AddressBytes | string): boolean {
    if (this.ranges.length === 0) return false;
    const bytes = typeof address === 'string' ? parseAddress(address) : address;
    if (bytes === undefined) return false;
    for (const range of this.ranges) if (inRange(range, bytes)) return true;
    return false;
  }
}
