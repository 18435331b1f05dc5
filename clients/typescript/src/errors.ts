/** The errors a meter client throws. Bad arguments throw `TypeError` or `RangeError`. */

import type { Json } from "./types.js";

/** Base class of every error of this package. */
export class MeterError extends Error {
  override name = "MeterError";
}

/** meter answered with an error envelope: `{code, message, details}`. */
export class ApiError extends MeterError {
  override name = "ApiError";
  readonly status: number;
  readonly code: string;
  readonly details: Json;

  constructor(status: number, code: string, message: string, details: Json = {}) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** A count (number) or an amount of money (exact decimal string). */
export type Amount = number | string;

/**
 * 429 `usage_limit_exceeded`: the call would exceed a limit. The fields come from the
 * answer's `details`; `retry_after` (seconds) from its `Retry-After` header.
 */
export class LimitExceeded extends ApiError {
  override name = "LimitExceeded";
  readonly metric: string | null;
  readonly used: Amount | null;
  readonly limit: Amount | null;
  readonly requested: Amount | null;
  /** RFC 3339; a server with budgets names it `resets_at`, read too. */
  readonly period_resets_at: string | null;
  readonly upgrade_to: string | null;
  readonly retry_after: number | null;

  constructor(status: number, code: string, message: string, details: Json, retryAfter: number | null) {
    super(status, code, message, details);
    const d = details as Record<string, unknown>;
    this.metric = (d["metric"] as string | undefined) ?? null;
    this.used = (d["used"] as Amount | undefined) ?? null;
    this.limit = (d["limit"] as Amount | undefined) ?? null;
    this.requested = (d["requested"] as Amount | undefined) ?? null;
    this.period_resets_at = ((d["period_resets_at"] ?? d["resets_at"]) as string | undefined) ?? null;
    this.upgrade_to = (d["upgrade_to"] as string | undefined) ?? null;
    this.retry_after = retryAfter;
  }
}

/**
 * meter did not answer in time, could not be reached, or answered 5xx after the retries.
 * `events` holds the usage events of a `record` that could not be delivered (with
 * `onUnavailable: "deny"`; `"allow"` queues them instead).
 */
export class MeterUnavailable extends MeterError {
  override name = "MeterUnavailable";
  readonly events: Json[];

  constructor(message: string, events: Json[] = []) {
    super(message);
    this.events = events;
  }
}

/** A provider response carries no usage object this client can read, or a bad count. */
export class UsageError extends MeterError {
  override name = "UsageError";
}
