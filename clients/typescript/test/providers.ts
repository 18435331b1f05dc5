/** Fake provider responses, as the providers' REST APIs (and their Node SDKs) return them. */

export const OPENAI_CHAT = {
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1764000000,
  model: "gpt-4o-mini",
  choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: "Hello" } }],
  usage: {
    prompt_tokens: 1200,
    completion_tokens: 300,
    total_tokens: 1500,
    prompt_tokens_details: { cached_tokens: 200, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 50, audio_tokens: 0 },
  },
};

export const OPENAI_RESPONSES = {
  id: "resp_1",
  object: "response",
  created_at: 1764000000,
  model: "gpt-4o-mini",
  output: [],
  status: "completed",
  usage: {
    input_tokens: 900,
    output_tokens: 100,
    total_tokens: 1000,
    input_tokens_details: { cached_tokens: 300, cache_write_tokens: 0 },
    output_tokens_details: { reasoning_tokens: 20 },
  },
};

export const ANTHROPIC = {
  id: "msg_1",
  type: "message",
  role: "assistant",
  model: "claude-haiku-4-5",
  content: [{ type: "text", text: "Hello" }],
  stop_reason: "end_turn",
  stop_sequence: null,
  usage: { input_tokens: 100, output_tokens: 40, cache_read_input_tokens: 1000, cache_creation_input_tokens: 500 },
};

export const GEMINI = {
  candidates: [{ content: { role: "model", parts: [{ text: "Hello" }] }, finishReason: "STOP" }],
  usageMetadata: {
    promptTokenCount: 2000,
    candidatesTokenCount: 300,
    cachedContentTokenCount: 500,
    thoughtsTokenCount: 100,
    totalTokenCount: 2400,
  },
  modelVersion: "gemini-2.5-flash",
};

/** Like @google/genai's GenerateContentResponse: a class instance with a text getter. */
export class GenerateContentResponse {
  candidates?: unknown[];
  usageMetadata?: Record<string, number>;
  get text(): string {
    return "Hello";
  }
}

export function geminiSdk(): GenerateContentResponse {
  return Object.assign(new GenerateContentResponse(), structuredClone(GEMINI));
}

/** An object that serialises through toJSON (as some SDK wrappers do). */
export function withToJson<T>(value: T): { toJSON(): T } {
  return { toJSON: () => structuredClone(value) };
}
