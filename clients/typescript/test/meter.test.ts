/** The TypeScript client against a real `meter serve`. */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { ApiError, LimitExceeded, Meter, MeterUnavailable, UsageError, readUsage, type Guard } from "../src/index.js";
import { CountingServer, DroppingProxy, MeterServer, user } from "./helpers.js";
import { ANTHROPIC, GEMINI, OPENAI_CHAT, OPENAI_RESPONSES, geminiSdk, withToJson } from "./providers.js";

let server: MeterServer;

before(async () => {
  server = await MeterServer.started();
});

after(async () => {
  await server.dispose();
});

function meterFor(s: MeterServer, extra: Partial<ConstructorParameters<typeof Meter>[0]> = {}): Meter {
  return new Meter({ baseUrl: s.base, apiKey: s.serviceKey, ...extra });
}

describe("check", () => {
  test("an allowed check reports remaining and holds a reservation", async () => {
    const u = user();
    const meter = meterFor(server);
    const before = await meter.check({ user_id: u, model: "gemini-2.5-flash", provider: "gemini", estimated_input_tokens: 100 });
    assert.equal(before.allowed, true);
    assert.equal(before.plan, "free");
    assert.equal(before.reservation_id, undefined);
    assert.equal(before.remaining["calls:gemini"], 100);
    assert.equal(before.remaining["cost_usd"], "2");

    const held = await meter.check({ user_id: u, model: "gemini-2.5-flash", estimated_input_tokens: 100, reserve: true });
    assert.ok(held.reservation_id && held.expires_at);
    assert.equal(held.remaining["calls:gemini"], 99);
    assert.equal(held.remaining["tokens:gemini"], 100_000 - 100);
    assert.equal(held.estimated_cost_usd, "0.00003");

    assert.equal((await meter.release(held.reservation_id)).status, "released");
    assert.equal((await meter.release(held.reservation_id)).status, "released");
    assert.equal((await meter.check({ user_id: u, model: "gemini-2.5-flash" })).remaining["calls:gemini"], 100);
  });

  test("a denied check throws LimitExceeded with the 429 details", async () => {
    const meter = meterFor(server);
    const err = await meter.check({ user_id: user(), model: "gpt-4o-mini", provider: "openai" }).catch((e: unknown) => e);
    assert.ok(err instanceof LimitExceeded);
    assert.equal(err.status, 429);
    assert.equal(err.code, "usage_limit_exceeded");
    assert.deepEqual([err.metric, err.used, err.limit, err.requested, err.upgrade_to], ["calls:openai", 0, 0, 1, "basic"]);
    assert.match(err.period_resets_at ?? "", /^\d{4}-\d{2}-01T00:00:00Z$/);
    assert.ok(err.retry_after !== null && err.retry_after > 0);
  });

  test("a tiny plan denies the call past its limit", async () => {
    const u = user();
    await server.subscribe(u, await server.putPlan({ "calls:gemini": 1, cost_usd: "5" }));
    const meter = meterFor(server);
    await meter.check({ user_id: u, model: "gemini-2.5-flash" });
    const r = await meter.record({ user_id: u, model: "gemini-2.5-flash", input_tokens: 10, output_tokens: 5 });
    assert.equal(r.recorded, 1);
    await assert.rejects(meter.check({ user_id: u, model: "gemini-2.5-flash" }), (e: unknown) => {
      assert.ok(e instanceof LimitExceeded);
      assert.deepEqual([e.metric, e.used, e.limit, e.requested], ["calls:gemini", 1, 1, 1]);
      return true;
    });
  });

  test("other API errors carry code, message and details", async () => {
    const meter = meterFor(server);
    await assert.rejects(meter.release("rsv_does_not_exist"), (e: unknown) => e instanceof ApiError && e.status === 404 && e.code === "not_found");
    await assert.rejects(
      meter.record({ user_id: user(), model: "gemini-2.5-flash", input_tokens: -1 }),
      (e: unknown) => e instanceof ApiError && e.code === "invalid_events" && Array.isArray((e.details as any).events),
    );
    const bad = new Meter({ baseUrl: server.base, apiKey: "mk_not_a_key" });
    await assert.rejects(bad.plans(), (e: unknown) => e instanceof ApiError && e.status === 401 && e.code === "unauthorized");
  });
});

describe("guard", () => {
  const cases: [string, string, string, () => unknown, Record<string, unknown>][] = [
    ["openai chat", "gpt-4o-mini", "openai", () => structuredClone(OPENAI_CHAT), OPENAI_CHAT.usage],
    ["openai responses", "gpt-4o-mini", "openai", () => structuredClone(OPENAI_RESPONSES), OPENAI_RESPONSES.usage],
    ["anthropic", "claude-haiku-4-5", "anthropic", () => structuredClone(ANTHROPIC), ANTHROPIC.usage],
    ["gemini", "gemini-2.5-flash", "gemini", () => structuredClone(GEMINI), GEMINI.usageMetadata],
    ["gemini sdk object", "gemini-2.5-flash", "gemini", geminiSdk, GEMINI.usageMetadata],
    ["anthropic via toJSON", "claude-haiku-4-5", "anthropic", () => withToJson(ANTHROPIC), ANTHROPIC.usage],
  ];
  for (const [name, model, provider, response, usageJson] of cases) {
    test(`records ${name} usage at the quoted cost`, async () => {
      const u = user();
      await server.subscribe(u, "pro");
      const meter = meterFor(server);
      let g: Guard | undefined;
      const fake = response();
      const resp = await meter.guard({ user_id: u, model, provider, estimated_input_tokens: 2000, estimated_output_tokens: 500 }, async (guard) => {
        g = guard;
        assert.ok(guard.reservation_id);
        return fake;
      });
      assert.equal(resp, fake);
      assert.ok(g?.result && g.event_id);
      assert.equal(g.result.recorded, 1);
      const quote = await meter.quote({ model, provider, usage: usageJson });
      assert.equal(quote.priced, true);
      assert.ok(quote.cost_usd && quote.cost_usd !== "0");
      assert.equal(g.result.events[0]?.cost_usd, quote.cost_usd);
      const view = await meter.usage(u);
      assert.equal(view.total_calls, 1);
      assert.equal(view.total_cost, quote.cost_usd);
      assert.deepEqual(await server.eventIds(u), [g.event_id]);
      assert.match(g.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal((await meter.release(g.reservation_id!)).status, "settled");
    });
  }

  test("a failing call releases its reservation and rethrows", async () => {
    const u = user();
    const meter = meterFor(server);
    const before = (await meter.check({ user_id: u, model: "gemini-2.5-flash" })).remaining;
    let rid: string | null = null;
    await assert.rejects(
      meter.guard({ user_id: u, model: "gemini-2.5-flash", estimated_input_tokens: 5000, estimated_output_tokens: 1000 }, async (g) => {
        rid = g.reservation_id;
        const held = (await meter.check({ user_id: u, model: "gemini-2.5-flash" })).remaining;
        assert.equal(held["tokens:gemini"], (before["tokens:gemini"] as number) - 6000);
        throw new Error("provider timed out");
      }),
      /provider timed out/,
    );
    assert.deepEqual((await meter.check({ user_id: u, model: "gemini-2.5-flash" })).remaining, before);
    assert.equal((await meter.release(rid!)).status, "released");
    assert.equal((await meter.usage(u)).total_calls, 0);
  });

  test("a response without usage releases and throws UsageError", async () => {
    const u = user();
    const meter = meterFor(server);
    const before = (await meter.check({ user_id: u, model: "gemini-2.5-flash" })).remaining;
    await assert.rejects(meter.guard({ user_id: u, model: "gemini-2.5-flash", estimated_input_tokens: 10 }, async () => ({ text: "no usage" })), UsageError);
    assert.deepEqual((await meter.check({ user_id: u, model: "gemini-2.5-flash" })).remaining, before);
  });

  test("explicit usage and units", async () => {
    const u = user();
    const meter = meterFor(server);
    let g: Guard | undefined;
    await meter.guard({ user_id: u, model: "gemini-2.5-flash" }, async (guard) => {
      g = guard;
      guard.setUsage({ input_tokens: 100, output_tokens: 10, cached_input_tokens: 40 });
      return "a streamed answer";
    });
    const q = await meter.quote({ model: "gemini-2.5-flash", input_tokens: 100, output_tokens: 10, cached_input_tokens: 40 });
    assert.equal(g?.result?.events[0]?.cost_usd, q.cost_usd);

    await meter.guard({ user_id: u, provider: "tavily", searches: 1 }, async (guard) => {
      g = guard;
      return { results: [] };
    });
    assert.equal(g?.result?.events[0]?.cost_usd, "0.008");
    assert.equal((await meter.usage(u)).provider_breakdown["tavily"]?.calls, 1);
  });

  test("a dropped answer is retried under the same event id and counted once", async () => {
    const u = user();
    const proxy = await new DroppingProxy(server.base).listen();
    try {
      const meter = new Meter({ baseUrl: proxy.base, apiKey: server.serviceKey });
      let g: Guard | undefined;
      await meter.guard({ user_id: u, model: "gemini-2.5-flash", estimated_input_tokens: 2000 }, async (guard) => {
        g = guard;
        return GEMINI;
      });
      assert.equal(proxy.dropped, 1);
      assert.equal(proxy.usagePosts, 2);
      assert.equal(g?.result?.recorded, 0);
      assert.equal(g?.result?.events[0]?.status, "duplicate");
      assert.deepEqual(await server.eventIds(u), [g!.event_id]);
      assert.equal(await server.usageCalls(u), 1);

      const r = await meter.record({ user_id: u, event_id: "fixed-id-1", model: "gemini-2.5-flash", input_tokens: 5 });
      assert.equal(r.events[0]?.status, "recorded");
    } finally {
      await proxy.close();
    }
  });
});

describe("meter unavailable", () => {
  test("deny throws and the call never runs; usage of a call that ran is kept", async () => {
    const s = await MeterServer.started();
    try {
      const u = user();
      const meter = meterFor(s, { timeout: 500, maxRetries: 0, retryInterval: 3_600_000 });
      // Meter goes away while the provider answers: the usage is queued, not lost.
      let g: Guard | undefined;
      await meter.guard({ user_id: u, model: "gemini-2.5-flash", estimated_input_tokens: 10 }, async (guard) => {
        g = guard;
        await s.stop();
        return GEMINI;
      });
      assert.equal(g?.result?.queued, 1);
      assert.equal(meter.pending, 1);

      let ran = false;
      await assert.rejects(
        meter.guard({ user_id: u, model: "gemini-2.5-flash" }, async () => {
          ran = true;
          return GEMINI;
        }),
        MeterUnavailable,
      );
      assert.equal(ran, false);
      await assert.rejects(meter.record({ user_id: u, model: "gemini-2.5-flash", input_tokens: 1 }), (e: unknown) => e instanceof MeterUnavailable && e.events.length === 1);
      assert.equal(meter.pending, 1);

      await s.start();
      assert.equal(await meter.flush(), 1);
      assert.equal(meter.pending, 0);
      assert.deepEqual(await s.eventIds(u), [g!.event_id]);
      await meter.close();
    } finally {
      await s.dispose();
    }
  });

  test("allow lets the call go and delivers its usage once after a restart", async () => {
    const s = await MeterServer.started();
    try {
      const u = user();
      const meter = meterFor(s, { timeout: 500, onUnavailable: "allow", maxRetries: 1, retryInterval: 3_600_000 });
      await s.stop();
      let g: Guard | undefined;
      await meter.guard({ user_id: u, model: "gemini-2.5-flash", estimated_input_tokens: 2000 }, async (guard) => {
        g = guard;
        assert.equal(guard.check.allowed, true);
        assert.equal(guard.check.unavailable, true);
        assert.equal(guard.reservation_id, null);
        return GEMINI;
      });
      assert.equal(g?.result?.queued, 1);
      assert.equal(await meter.flush(), 0);
      assert.equal(meter.pending, 1);

      await s.start();
      assert.equal(await meter.flush(), 1);
      assert.equal(await meter.flush(), 0);
      await meter.close();
      assert.deepEqual(await s.eventIds(u), [g!.event_id]);
      assert.equal(await s.usageCalls(u), 1);
    } finally {
      await s.dispose();
    }
  });

  test("allow retries the queue in the background; the queue is bounded", async () => {
    const s = await MeterServer.started();
    try {
      const u = user();
      const meter = meterFor(s, { timeout: 500, onUnavailable: "allow", maxRetries: 0, retryInterval: 200, queueSize: 3 });
      await s.stop();
      const events = [1, 2, 3, 4].map((n) => ({ user_id: u, event_id: `bg-${u}-${n}`, model: "gemini-2.5-flash", input_tokens: n }));
      const r = await meter.record(events);
      assert.equal(r.queued, 4);
      assert.equal(meter.pending, 3);
      assert.equal(meter.dropped, 1);
      await s.start();
      for (let i = 0; i < 300 && meter.pending > 0; i++) await new Promise((res) => setTimeout(res, 100));
      assert.equal(meter.pending, 0);
      await meter.close();
      assert.deepEqual((await s.eventIds(u)).sort(), events.slice(1).map((e) => e.event_id).sort());
    } finally {
      await s.dispose();
    }
  });
});

describe("reads", () => {
  test("every read route returns its typed result", async () => {
    const u = user();
    const plan = await server.putPlan({ "calls:gemini": 1 });
    await server.subscribe(u, plan);
    const meter = meterFor(server);
    await meter.record({ user_id: u, model: "gemini-2.5-flash", input_tokens: 1000, output_tokens: 100, latency_ms: 120 });

    const plans = await meter.plans();
    const names = plans.map((p) => p.name);
    for (const n of ["free", "basic", "pro", "enterprise", plan]) assert.ok(names.includes(n), n);
    assert.equal(plans.find((p) => p.name === "free")?.limits["calls:gemini"], 100);

    const pricing = await meter.pricing("gemini");
    assert.equal(pricing.prices.find((p) => p.model === "gemini-2.5-flash")?.prices["input_token"], "0.0000003");
    await assert.rejects(meter.pricing("no-such-provider"), (e: unknown) => e instanceof ApiError && e.code === "unknown_provider");

    const view = await meter.usage(u);
    assert.deepEqual([view.plan, view.total_calls, view.total_tokens, view.total_cost, view.usage_status], [plan, 1, 1100, "0.00055", "limit_reached"]);
    assert.equal(view.provider_breakdown["gemini"]?.avg_response_time_ms, 120);
    assert.equal((await meter.usage(u, { billing_period: view.period.name! })).total_calls, 1);

    const trends = await meter.trends(u, { months: 3 });
    assert.equal(trends.periods.length, 3);
    assert.equal(trends.total_calls[2], 1);
    assert.equal(trends.total_cost[2], "0.00055");

    const alerts = await meter.alerts(u);
    assert.deepEqual(alerts.alerts.map((a) => a.key).sort(), ["calls:gemini@100", "calls:gemini@80", "calls:gemini@90"]);
    assert.equal(alerts.unread_count, 3);
    assert.equal((await meter.markAlertRead(alerts.alerts[0]!.id)).read, true);
    assert.equal((await meter.alerts(u, { unread_only: true })).unread_count, 2);
    assert.equal((await meter.alerts(u, { limit: 1 })).alerts.length, 1);

    const dash = await meter.dashboard(u);
    assert.equal(dash.limits.plan_name, plan);
    assert.equal(dash.current_usage.total_calls, 1);
    assert.equal(dash.alerts.unread_count, 2);
    assert.equal(dash.summary.plan, plan);

    assert.deepEqual((await meter.billing(u)).invoices, []);
    const sub = await meter.subscription(u);
    assert.equal(sub.subscription?.plan, plan);
    assert.equal((await meter.subscription(`${u}-none`)).subscription, null);
  });

  test("ids with reserved characters reach the right user", async () => {
    const u = `team/a+b@x.com:${user()}=`;
    const meter = meterFor(server);
    await meter.record({ user_id: u, model: "gemini-2.5-flash", input_tokens: 10 });
    const view = await meter.usage(u);
    assert.equal(view.user_id, u);
    assert.equal(view.total_calls, 1);
  });
});

describe("bad input: an error at construction, never a request", () => {
  test("invalid base URLs and timeouts", () => {
    for (const baseUrl of ["", "   ", "127.0.0.1:8080", "ftp://host", "http://", "http://host:99999", "http://host/?q=1", undefined]) {
      assert.throws(() => new Meter({ baseUrl: baseUrl as string, apiKey: "mk_key" }), TypeError, String(baseUrl));
    }
    for (const timeout of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, "2" as unknown as number]) {
      assert.throws(() => new Meter({ baseUrl: "http://127.0.0.1:8080", apiKey: "mk_key", timeout }), RangeError, String(timeout));
    }
    assert.throws(() => new Meter({ baseUrl: "http://127.0.0.1:8080", apiKey: "" }), TypeError);
    assert.throws(() => new Meter({ baseUrl: "http://127.0.0.1:8080", apiKey: "k", onUnavailable: "maybe" as "deny" }), TypeError);
  });

  test("a guard without a user id and other bad calls send nothing", async () => {
    const counting = await new CountingServer().listen();
    try {
      const meter = new Meter({ baseUrl: counting.base, apiKey: "mk_key" });
      let ran = false;
      const call = async () => {
        ran = true;
        return GEMINI;
      };
      await assert.rejects(meter.guard({ user_id: "", model: "gemini-2.5-flash" }, call), TypeError);
      await assert.rejects(meter.guard({ model: "gemini-2.5-flash" } as never, call), TypeError);
      await assert.rejects(meter.guard({ user_id: "alice" }, call), TypeError);
      await assert.rejects(meter.guard({ user_id: "alice", model: "m", estimated_input_tokens: -1 }, call), RangeError);
      await assert.rejects(meter.guard({ user_id: "alice", model: "m", team_id: "t" }, call), TypeError);
      await assert.rejects(meter.check({ user_id: "", model: "m" }), TypeError);
      await assert.rejects(meter.record([]), RangeError);
      await assert.rejects(meter.record({ model: "m" } as never), TypeError);
      await assert.rejects(meter.usage(""), TypeError);
      await meter.close();
      assert.equal(ran, false);
      assert.equal(counting.requests, 0);
    } finally {
      await counting.close();
    }
  });

  test("the key is not serialised", () => {
    const meter = new Meter({ baseUrl: "http://127.0.0.1:8080", apiKey: "mk_secret_value" });
    assert.ok(!JSON.stringify(meter).includes("mk_secret_value"));
  });
});

describe("readUsage", () => {
  test("reads every provider shape", () => {
    assert.deepEqual(readUsage(OPENAI_CHAT), { input_tokens: 1200, output_tokens: 300, cached_input_tokens: 200, cache_write_tokens: 0, reasoning_tokens: 50 });
    assert.deepEqual(readUsage(OPENAI_RESPONSES), { input_tokens: 900, output_tokens: 100, cached_input_tokens: 300, cache_write_tokens: 0, reasoning_tokens: 20 });
    assert.deepEqual(readUsage(ANTHROPIC), { input_tokens: 1600, output_tokens: 40, cached_input_tokens: 1000, cache_write_tokens: 500, reasoning_tokens: 0 });
    const gemini = { input_tokens: 2000, output_tokens: 400, cached_input_tokens: 500, cache_write_tokens: 0, reasoning_tokens: 100 };
    assert.deepEqual(readUsage(GEMINI), gemini);
    assert.deepEqual(readUsage(geminiSdk()), gemini);
    assert.deepEqual(readUsage({ usage_metadata: { prompt_token_count: 2000, candidates_token_count: 300, cached_content_token_count: 500, thoughts_token_count: 100 } }), gemini);
    assert.deepEqual(readUsage(withToJson(OPENAI_CHAT)), readUsage(OPENAI_CHAT));
  });

  test("no usage and bad counts", () => {
    assert.equal(readUsage({ text: "hi" }), null);
    assert.equal(readUsage(null), null);
    assert.equal(readUsage("text"), null);
    assert.throws(() => readUsage({ usage: { prompt_tokens: -1 } }), UsageError);
    assert.throws(() => readUsage({ usage: { prompt_tokens: 1.5 } }), UsageError);
    assert.throws(() => readUsage({ usage: { prompt_tokens: "12" } }), UsageError);
  });
});

describe("org and team", () => {
  test("are not sent unless set", async () => {
    const u = user();
    const org = `org-${randomUUID().slice(0, 12)}`;
    const r = await server.admin("PUT", `/budgets/${org}-nothing`, {
      scope: { kind: "org", org_id: org }, limits: { "calls:*": 0 }, window: "day", mode: "hard",
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const meter = meterFor(server);
    // The org allows nothing: a check without it succeeds, so it was not sent.
    assert.equal((await meter.check({ user_id: u, model: "gemini-2.5-flash", org_id: undefined })).allowed, true);
    const err = await meter.check({ user_id: u, model: "gemini-2.5-flash", org_id: org }).catch((e: unknown) => e);
    assert.ok(err instanceof LimitExceeded);
  });

  test("scope the check, the usage and the quote", async () => {
    const u = user();
    const org = `org-${randomUUID().slice(0, 12)}`;
    const r = await server.admin("PUT", `/budgets/${org}-red-rate`, {
      scope: { kind: "team", org_id: org, team_id: "red" }, limits: { "calls:*": 2 }, window: "minute", mode: "hard",
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const meter = meterFor(server);
    for (let i = 0; i < 2; i++) {
      assert.equal((await meter.check({ user_id: u, model: "gemini-2.5-flash", org_id: org, team_id: "red" })).allowed, true);
    }
    const err = await meter.check({ user_id: u, model: "gemini-2.5-flash", org_id: org, team_id: "red" }).catch((e: unknown) => e);
    assert.ok(err instanceof LimitExceeded);
    assert.deepEqual([err.metric, err.used, err.limit], ["calls:*", 2, 2]);
    assert.deepEqual((err.details as any).scope, { kind: "team", org_id: org, team_id: "red" });
    assert.equal((err.details as any).budget_id, `${org}-red-rate`);
    assert.ok(err.retry_after !== null && err.retry_after >= 1 && err.retry_after <= 60);
    assert.equal((await meter.check({ user_id: u, model: "gemini-2.5-flash", org_id: org, team_id: "blue" })).allowed, true);
    const rec = await meter.record({ user_id: u, model: "gemini-2.5-flash", input_tokens: 10, org_id: org, team_id: "red" });
    assert.equal(rec.recorded, 1);
    const q = await meter.quote({ model: "gemini-2.5-flash", input_tokens: 10, org_id: org });
    assert.ok(Number(q.cost_usd) > 0);
    const usage = await server.admin("GET", `/org/${org}/usage`);
    assert.equal(usage.body.data.total_calls, 1, JSON.stringify(usage.body));
    const members = await server.admin("GET", `/org/${org}/members`);
    assert.deepEqual(members.body.data.users.map((m: { user_id: string }) => m.user_id), [u]);
    assert.deepEqual(members.body.data.teams.map((t: { team_id: string }) => t.team_id), ["red"]);
  });
});
