/**
 * Capabilities plugins offer each other and the gateway, by well-known name. The map is empty here:
 * a plugin adds its services to it by declaration merging (see plugin-sdk.ts), so the core names none.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ServiceMap {}

export class Services {
  private readonly provided = new Map<keyof ServiceMap, { owner: string; service: unknown }>();

  provide<K extends keyof ServiceMap>(owner: string, name: K, service: ServiceMap[K]): void {
    const existing = this.provided.get(name);
    if (existing && existing.owner !== owner) {
      throw new Error(`service "${String(name)}" is already provided by plugin "${existing.owner}"`);
    }
    this.provided.set(name, { owner, service });
  }

  get<K extends keyof ServiceMap>(name: K): ServiceMap[K] | undefined {
    return this.provided.get(name)?.service as ServiceMap[K] | undefined;
  }

  /** Withdraws everything a plugin provided (it stopped, or never finished starting). */
  withdraw(owner: string): void {
    for (const [name, entry] of this.provided) if (entry.owner === owner) this.provided.delete(name);
  }
}
