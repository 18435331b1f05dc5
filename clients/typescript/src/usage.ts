/**
 * Reading the usage object of a provider's response into meter's token counts: OpenAI Chat
 * Completions and Responses, Anthropic Messages, Gemini generateContent (`usageMetadata`,
 * camelCase or snake_case), and meter's own `Usage`. The whole response or its usage
 * object may be given; objects with a `toJSON()` are read through it. The arithmetic is the
 * server's (shared/src/usage/normalise.rs), so a recorded cost equals the quote of the same
 * provider usage object.
 */

import { UsageError } from "./errors.js";
import type { Usage } from "./types.js";

type Obj = Record<string, unknown>;

function plain(value: unknown): unknown {
  if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") {
    return (value as { toJSON: () => unknown }).toJSON();
  }
  return value;
}

function isObj(value: unknown): value is Obj {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function get(obj: unknown, ...names: string[]): unknown {
  if (!isObj(obj)) return undefined;
  for (const n of names) {
    const v = obj[n];
    if (v !== undefined && v !== null) return plain(v);
  }
  return undefined;
}

function has(obj: unknown, ...names: string[]): boolean {
  return get(obj, ...names) !== undefined;
}

function count(obj: unknown, ...names: string[]): number {
  const v = get(obj, ...names);
  if (v === undefined) return 0;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new UsageError(`usage count \`${names[0]}\` is not a whole number: ${JSON.stringify(v)}`);
  }
  if (v < 0) throw new UsageError(`usage count \`${names[0]}\` is negative: ${v}`);
  return v;
}

function usage(input: number, output: number, cached = 0, cacheWrite = 0, reasoning = 0): Usage {
  return { input_tokens: input, output_tokens: output, cached_input_tokens: cached, cache_write_tokens: cacheWrite, reasoning_tokens: reasoning };
}

function gemini(meta: unknown): Usage {
  const thoughts = count(meta, "thoughtsTokenCount", "thoughts_token_count");
  return usage(
    count(meta, "promptTokenCount", "prompt_token_count"),
    count(meta, "candidatesTokenCount", "candidates_token_count") + thoughts,
    count(meta, "cachedContentTokenCount", "cached_content_token_count"),
    0,
    thoughts,
  );
}

function usageObject(u: unknown): Usage | null {
  if (!isObj(u)) return null;
  if (has(u, "cached_input_tokens", "cache_write_tokens")) {
    return usage(count(u, "input_tokens"), count(u, "output_tokens"), count(u, "cached_input_tokens"), count(u, "cache_write_tokens"), count(u, "reasoning_tokens"));
  }
  if (has(u, "promptTokenCount", "prompt_token_count", "candidatesTokenCount", "candidates_token_count", "totalTokenCount", "total_token_count")) {
    return gemini(u);
  }
  if (has(u, "prompt_tokens", "completion_tokens")) {
    return usage(
      count(u, "prompt_tokens"),
      count(u, "completion_tokens"),
      count(get(u, "prompt_tokens_details"), "cached_tokens"),
      0,
      count(get(u, "completion_tokens_details"), "reasoning_tokens"),
    );
  }
  if (has(u, "input_tokens_details", "output_tokens_details")) {
    return usage(
      count(u, "input_tokens"),
      count(u, "output_tokens"),
      count(get(u, "input_tokens_details"), "cached_tokens"),
      0,
      count(get(u, "output_tokens_details"), "reasoning_tokens"),
    );
  }
  if (has(u, "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")) {
    const read = count(u, "cache_read_input_tokens");
    const write = count(u, "cache_creation_input_tokens");
    return usage(count(u, "input_tokens") + read + write, count(u, "output_tokens"), read, write, 0);
  }
  return null;
}

/**
 * The token counts of a provider response (or of its usage object); `null` when it carries
 * no usage object of a known shape. A malformed count throws `UsageError`.
 */
export function readUsage(response: unknown): Usage | null {
  const r = plain(response);
  if (!isObj(r)) return null;
  const meta = get(r, "usageMetadata", "usage_metadata");
  if (meta !== undefined) return gemini(meta);
  const u = get(r, "usage");
  if (u !== undefined) {
    const found = usageObject(u);
    if (found) return found;
  }
  return usageObject(r);
}
