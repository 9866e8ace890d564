import type { Policy, PromptPlan, Subject, ToolPlan } from './policy.ts';

/** One sender (channel, user id and tenant id as received), resolved by the policy once. */
export interface Sender {
  channel: string;
  userId: string;
  tenantId: string | undefined;
  subject: Subject;
  /** What a prompt fetch is held to. */
  prompt: PromptPlan;
  /** What a tool call is held to, per tool name as received; made on first use. */
  tools: Map<string, ToolPlan> | undefined;
}

/** Most tool names remembered per sender; beyond it, tool checks are built per call. */
const TOOLS_PER_SENDER = 16;

/**
 * The policy's answer for each recent sender, kept so a user who writes again costs a lookup, not a
 * new subject and new keys. That matters beyond the allocations: a key string made for one message
 * has no hash yet, and hashing a concatenated string is what made each store lookup several times
 * slower than the decision itself. Reused keys carry their hash.
 *
 * Bounded: when `capacity` senders are held, the cache starts over (a working set larger than that
 * gets no reuse, and no growth either). Ids stay inside the process, like the store's keys.
 */
export class SenderCache {
  private readonly senders = new Map<string, Sender>();

  constructor(
    private readonly policy: Policy,
    private readonly capacity: number,
  ) {}

  get size(): number {
    return this.senders.size;
  }

  resolve(channel: string, userId: string, tenantId: string | undefined): Sender {
    const known = this.senders.get(userId);
    if (known !== undefined && known.channel === channel && known.tenantId === tenantId) return known;
    const subject = this.policy.subject(channel, userId, tenantId);
    const sender: Sender = { channel, userId, tenantId, subject, prompt: this.policy.promptPlan(subject), tools: undefined };
    // The same user id on another channel or tenant replaces the entry (correct, merely not reused).
    if (known === undefined && this.senders.size >= this.capacity) this.senders.clear();
    this.senders.set(userId, sender);
    return sender;
  }

  forTool(sender: Sender, tool: string): ToolPlan {
    let plan = sender.tools?.get(tool);
    if (plan !== undefined) return plan;
    plan = this.policy.toolPlan(sender.subject, tool);
    sender.tools ??= new Map();
    if (sender.tools.size < TOOLS_PER_SENDER) sender.tools.set(tool, plan);
    return plan;
  }
}
