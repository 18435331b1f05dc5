/** The client: `Meter`, its guard and its queue of undelivered usage. */

import { ApiError, LimitExceeded, MeterError, MeterUnavailable, UsageError } from "./errors.js";
import { uuid7 } from "./ids.js";
import type {
  Alerts,
  Billing,
  CheckRequest,
  CheckResult,
  Dashboard,
  GuardOptions,
  Json,
  MarkRead,
  Plan,
  Pricing,
  Quote,
  QuoteRequest,
  RecordResult,
  Release,
  SubscriptionView,
  Trends,
  Usage,
  UsageEvent,
  UsageView,
} from "./types.js";
import { readUsage } from "./usage.js";

export const VERSION = "0.1.0";
const API_PREFIX = "/api/subscription";
const MAX_BATCH = 100;
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2000;

export interface MeterOptions {
  /** The server, e.g. `http://127.0.0.1:8080` (a trailing `/api/subscription` is accepted). */
  baseUrl: string;
  /** A `service` key (`meter keys create --role service`). */
  apiKey: string;
  /** Per attempt, in milliseconds. Default 2000. */
  timeout?: number;
  /** What to do when meter cannot answer: `"deny"` (default) throws `MeterUnavailable`; `"allow"` lets the call go and queues its usage. */
  onUnavailable?: "deny" | "allow";
  /** Retries of `record`, `release` and the reads on transport errors and 5xx. Default 3. */
  maxRetries?: number;
  /** The most usage events kept while meter is unavailable; the oldest are dropped past it. Default 1000. */
  queueSize?: number;
  /** Milliseconds between background retries of the queue. Default 5000. */
  retryInterval?: number;
}

const UNIT_FIELDS = ["requests", "searches", "images", "pages"] as const;
const CHECK_COUNTS = ["estimated_input_tokens", "estimated_output_tokens", "reservation_ttl_seconds"] as const;

function requireId(value: unknown, what: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new TypeError(`${what} must be a non-empty string`);
  }
  return value;
}

function segment(value: unknown, what: string): string {
  return encodeURIComponent(requireId(value, what));
}

function optionalCount(name: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, not ${String(value)}`);
  }
  return value;
}

function positive(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive, finite number of milliseconds, not ${String(value)}`);
  }
  return value;
}

function validateBaseUrl(baseUrl: unknown): string {
  if (typeof baseUrl !== "string" || baseUrl.trim() === "") {
    throw new TypeError("baseUrl must be an http(s) URL such as http://127.0.0.1:8080");
  }
  let url: URL;
  try {
    url = new URL(baseUrl.trim());
  } catch {
    throw new TypeError(`baseUrl is not a URL: ${JSON.stringify(baseUrl)}`);
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    throw new TypeError(`baseUrl must be an http(s) URL with a host, not ${JSON.stringify(baseUrl)}`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new TypeError(`baseUrl must not have a query, fragment or credentials: ${JSON.stringify(baseUrl)}`);
  }
  let path = url.pathname.replace(/\/+$/, "");
  if (path.endsWith(API_PREFIX)) path = path.slice(0, -API_PREFIX.length);
  return `${url.protocol}//${url.host}${path}`;
}

/** Sent only when set: servers without organisation support reject unknown fields. */
function scope(body: Json, org_id: unknown, team_id: unknown): void {
  if (team_id !== undefined && org_id === undefined) throw new TypeError("team_id needs org_id");
  if (org_id !== undefined) body["org_id"] = requireId(org_id, "org_id");
  if (team_id !== undefined) body["team_id"] = requireId(team_id, "team_id");
}

function checkBody(req: CheckRequest, reserve: boolean): Json {
  if (req === null || typeof req !== "object") throw new TypeError("check needs an object with user_id");
  const body: Json = { user_id: requireId(req.user_id, "user_id") };
  if (req.provider !== undefined) body["provider"] = req.provider;
  if (req.model !== undefined) body["model"] = req.model;
  for (const k of CHECK_COUNTS) {
    const v = optionalCount(k, req[k]);
    if (v !== undefined) body[k] = v;
  }
  const units: Json = {};
  for (const k of UNIT_FIELDS) {
    const v = optionalCount(k, req[k]);
    if (v !== undefined) units[k] = v;
  }
  if (Object.keys(units).length > 0) body["units"] = units;
  if (reserve) body["reserve"] = true;
  scope(body, req.org_id, req.team_id);
  return body;
}

function eventBody(event: UsageEvent): Json {
  if (event === null || typeof event !== "object") throw new TypeError("an event is an object with user_id");
  requireId(event.user_id, "every event's user_id");
  const body: Json = {};
  for (const [k, v] of Object.entries(event)) if (v !== undefined && v !== null) body[k] = v;
  if (body["event_id"] === undefined) body["event_id"] = uuid7();
  if (body["team_id"] !== undefined && body["org_id"] === undefined) throw new TypeError("team_id needs org_id");
  return body;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * A client of meter's HTTP API for app backends.
 *
 * ```ts
 * const meter = new Meter({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.METER_KEY! });
 * const resp = await meter.guard({ user_id: "alice", model: "gpt-4o-mini", provider: "openai" },
 *   () => openai.chat.completions.create({ ... }));
 * ```
 */
export class Meter {
  readonly baseUrl: string;
  readonly timeout: number;
  readonly onUnavailable: "deny" | "allow";
  readonly maxRetries: number;
  readonly queueSize: number;
  readonly retryInterval: number;
  /** Events dropped because the queue was full. */
  dropped = 0;

  readonly #headers: Record<string, string>;
  readonly #queue: Json[] = [];
  #inflight = 0;
  #flushing: Promise<number> = Promise.resolve(0);
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;

  constructor(options: MeterOptions) {
    if (options === null || typeof options !== "object") throw new TypeError("new Meter({ baseUrl, apiKey })");
    this.baseUrl = validateBaseUrl(options.baseUrl);
    if (typeof options.apiKey !== "string" || options.apiKey.trim() === "") {
      throw new TypeError("apiKey must be a non-empty string");
    }
    this.timeout = positive("timeout", options.timeout ?? 2000);
    const mode = options.onUnavailable ?? "deny";
    if (mode !== "deny" && mode !== "allow") throw new TypeError(`onUnavailable must be "deny" or "allow", not ${String(mode)}`);
    this.onUnavailable = mode;
    const retries = options.maxRetries ?? 3;
    if (!Number.isInteger(retries) || retries < 0 || retries > 10) throw new RangeError("maxRetries must be an integer from 0 to 10");
    this.maxRetries = retries;
    const size = options.queueSize ?? 1000;
    if (!Number.isInteger(size) || size < 1) throw new RangeError("queueSize must be a positive integer");
    this.queueSize = size;
    this.retryInterval = positive("retryInterval", options.retryInterval ?? 5000);
    this.#headers = {
      authorization: `Bearer ${options.apiKey.trim()}`,
      accept: "application/json",
      "user-agent": `meter-client-typescript/${VERSION}`,
    };
  }

  /** Never shows the key. */
  toJSON(): Json {
    return { baseUrl: this.baseUrl, onUnavailable: this.onUnavailable };
  }

  // --- transport ------------------------------------------------------------------------

  async #request(method: string, path: string, body?: unknown, retry = true): Promise<unknown> {
    const attempts = 1 + (retry ? this.maxRetries : 0);
    let failure = new MeterUnavailable("meter was not asked");
    for (let attempt = 0; attempt < attempts; attempt++) {
      let retryAfter: string | null = null;
      try {
        const headers = body === undefined ? this.#headers : { ...this.#headers, "content-type": "application/json" };
        const init: RequestInit = { method, headers, signal: AbortSignal.timeout(this.timeout) };
        if (body !== undefined) init.body = JSON.stringify(body);
        const resp = await fetch(`${this.baseUrl}${API_PREFIX}${path}`, init);
        retryAfter = resp.headers.get("retry-after");
        return answer(resp.status, resp.headers, await resp.text());
      } catch (e) {
        if (e instanceof MeterUnavailable) failure = e;
        else if (e instanceof MeterError) throw e;
        else failure = new MeterUnavailable(`meter could not be reached: ${(e as Error)?.name ?? "error"}`);
      }
      if (attempt + 1 < attempts) await sleep(backoff(attempt, retryAfter));
    }
    throw failure;
  }

  // --- hot path -------------------------------------------------------------------------

  /**
   * May `user_id` make this call now? Throws `LimitExceeded` when not. `org_id`/`team_id`
   * need a server with organisation support.
   */
  async check(req: CheckRequest): Promise<CheckResult> {
    return this.#check(checkBody(req, req?.reserve === true));
  }

  async #check(body: Json): Promise<CheckResult> {
    try {
      return (await this.#request("POST", "/check", body, false)) as CheckResult;
    } catch (e) {
      if (!(e instanceof MeterUnavailable) || this.onUnavailable === "deny") throw e;
      return {
        allowed: true,
        unavailable: true,
        user_id: body["user_id"] as string,
        provider: (body["provider"] as string | undefined) ?? null,
        remaining: {},
        usage_percentages: {},
      };
    }
  }

  /**
   * Records usage events (`event_id` defaults to a UUIDv7). Retried on transport errors and
   * 5xx with backoff, under the same ids. When meter stays unavailable: `"deny"` throws
   * `MeterUnavailable` (its `events` are the undelivered ones), `"allow"` queues them.
   */
  async record(events: UsageEvent | UsageEvent[]): Promise<RecordResult> {
    const bodies = (Array.isArray(events) ? events : [events]).map(eventBody);
    if (bodies.length === 0) throw new RangeError("record needs at least one event");
    const result: RecordResult = { recorded: 0, events: [], queued: 0 };
    for (let i = 0; i < bodies.length; i += MAX_BATCH) {
      try {
        const r = (await this.#request("POST", "/usage", { events: bodies.slice(i, i + MAX_BATCH) })) as RecordResult;
        result.recorded += r.recorded;
        result.events.push(...r.events);
      } catch (e) {
        if (!(e instanceof MeterUnavailable)) throw e;
        const rest = bodies.slice(i);
        if (this.onUnavailable === "deny") throw new MeterUnavailable(e.message, rest);
        this.#enqueue(rest);
        result.queued = rest.length;
        return result;
      }
    }
    return result;
  }

  /** One event of a call that already happened: delivered, or queued whatever `onUnavailable` says. */
  async #recordOrQueue(body: Json): Promise<RecordResult> {
    try {
      const r = (await this.#request("POST", "/usage", { events: [body] })) as RecordResult;
      return { recorded: r.recorded, events: r.events, queued: 0 };
    } catch (e) {
      if (!(e instanceof MeterUnavailable)) throw e;
      this.#enqueue([body]);
      return { recorded: 0, events: [], queued: 1 };
    }
  }

  /** Frees a hold (idempotent): answers the reservation's final status. */
  async release(reservationId: string): Promise<Release> {
    return (await this.#request("POST", `/reservations/${segment(reservationId, "reservationId")}/release`)) as Release;
  }

  /** The cost of a hypothetical event; nothing is recorded. */
  async quote(req: QuoteRequest): Promise<Quote> {
    const body: Json = {};
    for (const [k, v] of Object.entries(req ?? {})) if (v !== undefined && v !== null && k !== "org_id" && k !== "team_id") body[k] = v;
    scope(body, req?.org_id, req?.team_id);
    return (await this.#request("POST", "/pricing/quote", body)) as Quote;
  }

  // --- reads ----------------------------------------------------------------------------

  async plans(): Promise<Plan[]> {
    return ((await this.#request("GET", "/plans")) as { plans: Plan[] }).plans;
  }

  async pricing(provider?: string): Promise<Pricing> {
    return (await this.#request("GET", `/pricing${query({ provider })}`)) as Pricing;
  }

  async usage(userId: string, options: { billing_period?: string } = {}): Promise<UsageView> {
    return (await this.#request("GET", `/usage/${segment(userId, "userId")}${query(options)}`)) as UsageView;
  }

  async trends(userId: string, options: { months?: number } = {}): Promise<Trends> {
    return (await this.#request("GET", `/usage/${segment(userId, "userId")}/trends${query(options)}`)) as Trends;
  }

  async dashboard(userId: string): Promise<Dashboard> {
    return (await this.#request("GET", `/dashboard/${segment(userId, "userId")}`)) as Dashboard;
  }

  async alerts(userId: string, options: { unread_only?: boolean; limit?: number } = {}): Promise<Alerts> {
    const q = query({ unread_only: options.unread_only ? true : undefined, limit: options.limit });
    return (await this.#request("GET", `/alerts/${segment(userId, "userId")}${q}`)) as Alerts;
  }

  async markAlertRead(alertId: string): Promise<MarkRead> {
    return (await this.#request("POST", `/alerts/${segment(alertId, "alertId")}/mark-read`)) as MarkRead;
  }

  async billing(userId: string): Promise<Billing> {
    return (await this.#request("GET", `/billing/${segment(userId, "userId")}`)) as Billing;
  }

  async subscription(userId: string): Promise<SubscriptionView> {
    return (await this.#request("GET", `/user/${segment(userId, "userId")}/subscription`)) as SubscriptionView;
  }

  // --- guard ----------------------------------------------------------------------------

  /**
   * Reserve → `call` → record its usage, or release on an exception.
   *
   * Checks with `reserve: true` (throws `LimitExceeded`, or `MeterUnavailable` with
   * `"deny"`), runs `call`, reads the usage object of what it returns (or the usage given to
   * `g.setUsage`), and records it under a fresh UUIDv7 `event_id` with the reservation;
   * retried with the same id, and queued if meter stays unavailable (the call already
   * happened, so its usage is kept whatever `onUnavailable` says). If `call` throws, the
   * reservation is released and the error rethrown. Resolves to what `call` returned.
   */
  async guard<T>(options: GuardOptions, call: (g: Guard) => Promise<T> | T): Promise<T> {
    if (options === null || typeof options !== "object") throw new TypeError("guard needs options with user_id");
    requireId(options.user_id, "guard's user_id");
    if (options.model === undefined && options.provider === undefined) throw new TypeError("guard needs a model or a provider");
    if (typeof call !== "function") throw new TypeError("guard needs the call to run");
    const body = checkBody(options, true);
    const units: Json = (body["units"] as Json | undefined) ?? {};
    const g = new Guard(await this.#check(body));
    const started = Date.now();
    let result: T;
    try {
      result = await call(g);
    } catch (e) {
      await this.#release(g.reservation_id);
      throw e;
    }
    let counts: Usage | null;
    try {
      counts = g.explicitUsage ?? readUsage(result);
      if (counts === null && Object.keys(units).length === 0) {
        throw new UsageError("the response carries no usage object this client reads (OpenAI, Anthropic, Gemini); call g.setUsage({...})");
      }
    } catch (e) {
      await this.#release(g.reservation_id);
      throw e;
    }
    const event = eventBody({
      user_id: options.user_id,
      provider: options.provider,
      model: options.model,
      timestamp: new Date().toISOString(),
      reservation_id: g.reservation_id ?? undefined,
      latency_ms: Date.now() - started,
      metadata: options.metadata,
      endpoint: options.endpoint,
      org_id: options.org_id,
      team_id: options.team_id,
      ...units,
      ...(counts ?? {}),
    });
    g.event_id = event["event_id"] as string;
    g.usage = counts;
    try {
      g.result = await this.#recordOrQueue(event);
    } catch (e) {
      await this.#release(g.reservation_id);
      throw e;
    }
    return result;
  }

  async #release(reservationId: string | null): Promise<void> {
    if (reservationId === null) return;
    try {
      await this.release(reservationId);
    } catch {
      // The hold expires with its TTL.
    }
  }

  // --- queue ----------------------------------------------------------------------------

  /** Usage events not yet delivered: queued, or being sent by a flush. */
  get pending(): number {
    return this.#queue.length + this.#inflight;
  }

  #push(events: Json[], front = false): void {
    if (front) this.#queue.unshift(...events);
    else this.#queue.push(...events);
    const over = this.#queue.length - this.queueSize;
    if (over > 0) {
      this.#queue.splice(0, over);
      this.dropped += over;
    }
  }

  #enqueue(events: Json[]): void {
    this.#push(events);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== null || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.flush()
        .catch(() => 0)
        .finally(() => {
          if (this.pending > 0) this.#schedule();
        });
    }, this.retryInterval);
    // Queued usage does not keep the process alive: call close() before exiting.
    this.#timer.unref?.();
  }

  /**
   * Sends the queued usage now; resolves to how many events meter answered. Events stay
   * queued while meter is unavailable; events meter rejects as invalid are dropped. Another
   * API error (a revoked key) is thrown, the events kept.
   */
  flush(): Promise<number> {
    const run = this.#flushing.catch(() => 0).then(() => this.#flushOnce());
    this.#flushing = run;
    return run;
  }

  async #flushOnce(): Promise<number> {
    let delivered = 0;
    for (;;) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      if (batch.length === 0) return delivered;
      this.#inflight += batch.length;
      let remaining = batch;
      try {
        try {
          await this.#deliver(batch);
          delivered += batch.length;
          remaining = [];
        } catch (e) {
          if (!(e instanceof ApiError) || !rejected(e)) throw e;
          while (remaining.length > 0) {
            try {
              await this.#deliver(remaining.slice(0, 1));
              delivered += 1;
            } catch (e1) {
              if (!(e1 instanceof ApiError) || !rejected(e1)) throw e1;
            }
            remaining = remaining.slice(1);
          }
        }
      } catch (e) {
        if (e instanceof MeterUnavailable) return delivered;
        throw e;
      } finally {
        this.#inflight -= batch.length;
        if (remaining.length > 0) this.#push(remaining, true);
      }
    }
  }

  async #deliver(batch: Json[]): Promise<void> {
    await this.#request("POST", "/usage", { events: batch });
  }

  /** Stops the background retry and sends what is queued (once). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    try {
      await this.flush();
    } catch {
      // Kept in `pending`; nothing more to do once closed.
    }
  }
}

/** What a guarded call sees: the check's answer, and where to give usage explicitly. */
export class Guard {
  readonly check: CheckResult;
  /** Set after the call: the recorded event's id, its counts and meter's answer. */
  event_id: string | null = null;
  usage: Usage | null = null;
  result: RecordResult | null = null;
  /** @internal */
  explicitUsage: Usage | null = null;

  constructor(check: CheckResult) {
    this.check = check;
  }

  get reservation_id(): string | null {
    return this.check.reservation_id ?? null;
  }

  /** Record these counts (a `Usage` or a provider usage object) instead of reading the response. */
  setUsage(usage: Partial<Usage> | Json): void {
    const u = readUsage(usage);
    if (u === null) throw new UsageError("not a usage object");
    this.explicitUsage = u;
  }
}

function rejected(e: ApiError): boolean {
  return e.status === 400 || e.status === 413 || e.status === 422;
}

function backoff(attempt: number, retryAfter: string | null): number {
  let delay = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt) * (0.5 + Math.random() / 2);
  if (retryAfter !== null && /^\d+$/.test(retryAfter.trim())) {
    delay = Math.max(delay, Math.min(Number(retryAfter) * 1000, BACKOFF_CAP_MS));
  }
  return delay;
}

function answer(status: number, headers: Headers, text: string): unknown {
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const env = (body !== null && typeof body === "object" ? body : {}) as { success?: unknown; data?: unknown; error?: unknown };
  if (status >= 200 && status < 300 && env.success === true) return env.data;
  const err = (env.error !== null && typeof env.error === "object" ? env.error : null) as { code?: unknown; message?: unknown; details?: unknown } | null;
  if (status >= 500 || (status >= 200 && status < 300)) {
    throw new MeterUnavailable(`meter answered ${status}${err?.code ? ` ${String(err.code)}` : ""}`);
  }
  if (err === null) throw new ApiError(status, "http_error", `meter answered ${status} without an error envelope`);
  const code = String(err.code ?? "");
  const message = String(err.message ?? "");
  const details = (err.details !== null && typeof err.details === "object" ? err.details : {}) as Json;
  if (status === 429 && code === "usage_limit_exceeded") {
    const h = headers.get("retry-after");
    throw new LimitExceeded(status, code, message, details, h !== null && /^\d+$/.test(h.trim()) ? Number(h) : null);
  }
  throw new ApiError(status, code, message, details);
}
