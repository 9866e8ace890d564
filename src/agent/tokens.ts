/**
 * The demo agent's token accounting: one token per four characters, rounded up (about what LLM
 * tokenisers average on English text). Real orchestrators pass their model's own counts.
 */
export function countTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Before the call: the prompt, and an answer assumed as long as the prompt. */
export function estimateTokens(prompt: string): number {
  return 2 * countTokens(prompt);
}
