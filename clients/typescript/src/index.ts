/**
 * meter-client: check limits, record usage and guard paid AI calls against a meter server.
 *
 * ```ts
 * import { Meter } from "meter-client";
 * const meter = new Meter({ baseUrl: "http://127.0.0.1:8080", apiKey });
 * const resp = await meter.guard({ user_id: "alice", model: "gpt-4o-mini", provider: "openai" },
 *   () => openai.chat.completions.create({ model: "gpt-4o-mini", messages }));
 * ```
 */

export { Guard, Meter, VERSION } from "./client.js";
export type { MeterOptions } from "./client.js";
export { ApiError, LimitExceeded, MeterError, MeterUnavailable, UsageError } from "./errors.js";
export type { Amount } from "./errors.js";
export { uuid7 } from "./ids.js";
export { readUsage } from "./usage.js";
export type * from "./types.js";
