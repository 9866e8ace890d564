/**
 * Capabilities plugins offer the gateway, by well-known name. The gateway's admin API finds the rate
 * limiter's operator view here without the framework importing the plugin.
 */
export interface LimitsQuery {
  channel: string;
  user_id: string;
  tenant_id?: string;
}

/** The rate limiter's operator view: inspect without consuming, and reset one user's state. */
export interface LimitsAdmin {
  inspect(query: LimitsQuery): Promise<unknown>;
  reset(query: LimitsQuery): Promise<unknown>;
}

export interface ServiceMap {
  limits: LimitsAdmin;
}

export class Services {
  private readonly provided = new Map<keyof ServiceMap, { owner: string; service: unknown }>();

  provide<K extends keyof ServiceMap>(owner: string, name: K, service: ServiceMap[K]): void {
    const existing = this.provided.get(name);
    if (existing && existing.owner !== owner) {
      throw new Error(`service "${name}" is already provided by plugin "${existing.owner}"`);
    }
    this.provided.set(name, { owner, service });
  }

  get<K extends keyof ServiceMap>(name: K): ServiceMap[K] | undefined {
    return this.provided.get(name)?.service as ServiceMap[K] | undefined;
  }

  /** Withdraws everything a plugin provided (on teardown). */
  withdraw(owner: string): void {
    for (const [name, entry] of this.provided) if (entry.owner === owner) this.provided.delete(name);
  }
}
