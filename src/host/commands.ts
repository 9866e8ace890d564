/** Who asks a chat command, as the channel received it. Sensitive ids: keys only, never logs. */
export interface CommandRequest {
  channel: string;
  userId: string;
  tenantId?: string;
  conversationId: string;
  /** What followed the command's name, trimmed. */
  args: string;
  signal?: AbortSignal;
}

/** Answers a chat command with the text the user reads. */
export type CommandHandler = (request: CommandRequest) => string | Promise<string>;

export interface CommandOptions {
  /** One line for help texts and platform menus. */
  description?: string;
  /**
   * The same answer in one short line, for a chat that shows a status line (the terminal chat), or
   * undefined when there is nothing to say. Costs nothing against any limit, like the command.
   */
  status?: CommandHandler;
}

interface Registered {
  owner: string;
  handler: CommandHandler;
  description: string | undefined;
  status: CommandHandler | undefined;
}

/** A command name: what follows the slash, letters, digits and `_` (Telegram's and Discord's rule). */
const COMMAND_NAME = /^[a-z0-9_]{1,32}$/;

/**
 * Chat commands that plugins answer themselves (`/limits`), on every channel, before the agent sees
 * the message: a command never runs a hook, so it costs nothing against any plugin's limits. A
 * command belongs to the plugin that added it and goes when that plugin stops.
 */
export class ChatCommands {
  private readonly commands = new Map<string, Registered>();

  add(owner: string, name: string, handler: CommandHandler, options: CommandOptions = {}): void {
    if (!COMMAND_NAME.test(name)) throw new Error(`a command name is 1-32 lower-case letters, digits or "_": ${name}`);
    const taken = this.commands.get(name);
    if (taken !== undefined && taken.owner !== owner) throw new Error(`command /${name} is already answered by plugin "${taken.owner}"`);
    this.commands.set(name, { owner, handler, description: options.description, status: options.status });
  }

  /** Takes away every command `owner` added (the plugin stopped). */
  withdraw(owner: string): void {
    for (const [name, command] of this.commands) if (command.owner === owner) this.commands.delete(name);
  }

  /** The commands served now, by name, with their descriptions. */
  list(): { name: string; description: string | undefined }[] {
    return [...this.commands].map(([name, { description }]) => ({ name, description }));
  }

  /** The status lines of every command that has one, joined (see CommandOptions.status); '' when none. */
  async statusLine(request: Omit<CommandRequest, 'args'>): Promise<string> {
    const lines: string[] = [];
    for (const { status } of this.commands.values()) {
      if (status === undefined) continue;
      const line = await status({ ...request, args: '' });
      if (line !== '') lines.push(line);
    }
    return lines.join(' | ');
  }

  /**
   * The command `text` calls, or undefined when it calls none served here. `/limits`, `/Limits`
   * and Telegram's `/limits@SomeBot` all call `limits`.
   */
  match(text: string): { handler: CommandHandler; args: string } | undefined {
    if (this.commands.size === 0) return undefined;
    const trimmed = text.trimStart();
    if (trimmed.charCodeAt(0) !== 0x2f /* "/" */) return undefined;
    const end = trimmed.search(/\s|$/);
    const word = trimmed.slice(1, end).toLowerCase();
    const name = word.includes('@') ? word.slice(0, word.indexOf('@')) : word;
    const command = this.commands.get(name);
    return command && { handler: command.handler, args: trimmed.slice(end).trim() };
  }
}
