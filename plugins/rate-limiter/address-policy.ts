import { AddressList, addressPrefix, flattened, parseAddress, ROUTE_GROUPS, type RouteGroup } from '../../src/plugin-sdk.ts';
import { blockKey } from './blocks/keys.ts';
import type { BlockCheck, BlockPolicy } from './blocks/types.ts';
import { addressKey, addressScope } from './keys.ts';
import type { AddressSetting } from './options.ts';
import { calendarsOf, compileRates, type CompiledRule, type PolicyCheck, type Subject } from './policy.ts';
import { rateList } from './rate.ts';

/** The one bucket of every request whose connection had no address (it closed first). */
export const UNKNOWN_ADDRESS = 'unknown';

/** A request's client, as by_address counts it. */
export interface AddressSubject extends Subject {
  /** The address, or its IPv6 prefix, or `unknown`: what the keys are for (never logged as is). */
  user: string;
}

const NONE: readonly PolicyCheck[] = Object.freeze([]);

/**
 * by_address compiled: which rules a request's client address and route group are held to, and the
 * exempt and deny lists. IPv6 addresses count by their `ipv6_prefix` network; exempt and deny ranges
 * are matched against the address itself.
 */
export class AddressPolicy {
  readonly failedAuthCost: number;
  private readonly ipv6Prefix: number;
  private readonly exempt: AddressList;
  private readonly deny: AddressList;
  private readonly rules = new Map<RouteGroup, readonly CompiledRule[]>();

  /**
   * `timeZone`: where calendar windows turn (the limiter's time_zone). `block`: the escalating blocks
   * of an address that keeps sending while refused, one per address across its route groups.
   */
  constructor(
    setting: AddressSetting,
    timeZone: string,
    private readonly block: BlockPolicy | undefined,
  ) {
    const calendars = calendarsOf(timeZone);
    this.failedAuthCost = setting.failed_auth_cost;
    this.ipv6Prefix = setting.ipv6_prefix;
    this.exempt = AddressList.of(setting.exempt);
    this.deny = AddressList.of(setting.deny);
    for (const group of ROUTE_GROUPS) {
      const rates = rateList(setting.routes[group] ?? setting.rate);
      if (rates.length > 0) this.rules.set(group, compileRates('address', rates, 'requests', false, calendars));
    }
  }

  /** The route groups with a limit, each with its rules. */
  limited(): [RouteGroup, readonly CompiledRule[]][] {
    return [...this.rules];
  }

  /** Who a request is from: its address's group (and scope), and whether it is denied or exempt. */
  subject(address: string | undefined): AddressSubject {
    const bytes = address === undefined ? undefined : parseAddress(address);
    // An IPv4 address counts on its own: its canonical text (what the HTTP channel sends) is its group.
    const group = bytes === undefined ? UNKNOWN_ADDRESS : bytes.length === 4 && !address!.includes(':') ? address! : addressPrefix(bytes, this.ipv6Prefix);
    const denied = bytes !== undefined && this.deny.has(bytes) ? 'address' : undefined;
    const exempt = bytes !== undefined && this.exempt.has(bytes);
    return { channel: 'http', user: group, tenant: undefined, scope: addressScope(group), exempt, denied };
  }

  /** The checks of one request: its route group's rules, for its address. */
  checks(subject: AddressSubject, routeGroup: RouteGroup): readonly PolicyCheck[] {
    const rules = this.rules.get(routeGroup);
    if (rules === undefined) return NONE;
    const key = addressKey(subject.scope, routeGroup);
    const block = this.blockOf(subject);
    return rules.map((rule) => (block === undefined ? { key: flattened(key + rule.keySuffix), rule } : { key: flattened(key + rule.keySuffix), rule, block }));
  }

  private blockOf(subject: AddressSubject): BlockCheck | undefined {
    return this.block === undefined ? undefined : { key: blockKey(subject.scope.tag), policy: this.block, subject: 'address' };
  }
}
