//! Input generators: arbitrary JSON, JSON text with byte mutations, and structure-aware
//! bodies whose fields are the real ones with values at and past every bound.

use meter_core::usage::UsageCounts;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Field names of every body under test, so arbitrary objects often hit real fields.
const FIELDS: &[&str] = &[
    "user_id",
    "event_id",
    "provider",
    "model",
    "timestamp",
    "events",
    "usage",
    "reserve",
    "reservation_ttl_seconds",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "units",
    "requests",
    "searches",
    "images",
    "pages",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "input_chars",
    "output_chars",
    "endpoint",
    "status_code",
    "latency_ms",
    "reservation_id",
    "metadata",
    "plan",
    "billing_cycle",
    "anchor",
    "status",
    "auto_renew",
    "name",
    "tier",
    "monthly_price_usd",
    "yearly_price_usd",
    "limits",
    "alert_thresholds",
    "overage_rate",
    "active",
    "features",
    "description",
    "versions",
    "prices",
    "effective_from",
    "effective_to",
    "source",
    "id",
    "aliases",
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "input_tokens_details",
    "output_tokens_details",
];

/// Numbers at and past the bounds: 0, 1, 10^12 (MAX_COUNT) and one more, the integer
/// limits, negatives, fractions, integral floats and huge floats.
fn number() -> impl Strategy<Value = Value> {
    let edge = prop_oneof![
        Just(Value::from(0u64)),
        Just(Value::from(1u64)),
        Just(Value::from(1_000_000_000_000u64)),
        Just(Value::from(1_000_000_000_001u64)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(-1i64)),
        Just(Value::from(3600u64)),
        Just(Value::from(3601u64)),
        Just(Value::from(599u64)),
        Just(Value::from(99u64)),
        Just(Value::from(12.0f64)),
        Just(Value::from(0.5f64)),
        Just(Value::from(-0.0f64)),
        Just(Value::from(1e12f64)),
        Just(Value::from(1e300f64)),
        Just(Value::from(f64::MAX)),
        Just(Value::from(-1e300f64)),
        Just(Value::from(9.007_199_254_740_993e15f64)),
    ];
    prop_oneof![
        4 => edge,
        2 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// Strings: ids, decimals, timestamps, choices, and arbitrary text.
fn string() -> impl Strategy<Value = String> {
    let known = prop_oneof![
        Just("gemini".to_owned()),
        Just("openai".to_owned()),
        Just("gemini-2.5-flash".to_owned()),
        Just("gpt-4o-mini".to_owned()),
        Just("u-1".to_owned()),
        Just("enterprise".to_owned()),
        Just("custom".to_owned()),
        Just("monthly".to_owned()),
        Just("calendar".to_owned()),
        Just("active".to_owned()),
        Just("2026-03-15T11:59:00Z".to_owned()),
        Just("2026-03-15T12:04:59Z".to_owned()),
        Just("2026-03-15T12:05:01+00:00".to_owned()),
        Just("2026-02-08T12:00:00Z".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        Just("0000-01-01T00:00:00Z".to_owned()),
        Just("0.000001".to_owned()),
        Just("1e-6".to_owned()),
        Just("-1".to_owned()),
        Just("79228162514264337593543950335".to_owned()),
        Just("79228162514264337593543950336".to_owned()),
        Just("0.0000000000000000000000000001".to_owned()),
        Just("NaN".to_owned()),
        Just("1e400".to_owned()),
        Just("12".to_owned()),
        Just("calls:gemini".to_owned()),
        Just("tokens:*".to_owned()),
        Just("cost_usd".to_owned()),
        Just("x".repeat(129)),
        Just("é".repeat(70)),
        Just(String::new()),
    ];
    prop_oneof![3 => known, 1 => "\\PC{0,24}", 1 => "[a-z0-9_:.*@/-]{0,40}"]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
        1 => string(),
    ]
}

/// Arbitrary JSON whose object keys are mostly real field names.
pub fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value for a field of a known kind, or (sometimes) anything.
fn count_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..2_000_000).prop_map(Value::from),
        3 => number(),
        1 => leaf(),
    ]
}

fn id_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,12}".prop_map(Value::String),
        2 => string().prop_map(Value::String),
        1 => leaf(),
    ]
}

fn object(fields: Vec<(String, Value)>) -> Value {
    Value::Object(fields.into_iter().collect::<Map<_, _>>())
}

/// Picks a subset of `(name, value strategy)` pairs, plus sometimes an unknown field.
fn fields(
    candidates: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> impl Strategy<Value = Vec<(String, Value)>> {
    fields_weighted(candidates, 0.6)
}

/// [`fields`], each field present with probability `p`.
fn fields_weighted(
    candidates: Vec<(&'static str, BoxedStrategy<Value>)>,
    p: f64,
) -> impl Strategy<Value = Vec<(String, Value)>> {
    let each: Vec<_> = candidates
        .into_iter()
        .map(move |(name, s)| proptest::option::weighted(p, s).prop_map(move |v| (name, v)))
        .collect();
    (each, proptest::option::weighted(0.1, (key(), leaf()))).prop_map(|(picked, extra)| {
        let mut out: Vec<(String, Value)> = picked
            .into_iter()
            .filter_map(|(n, v)| v.map(|v| (n.to_owned(), v)))
            .collect();
        out.extend(extra);
        out
    })
}

pub fn check_body() -> impl Strategy<Value = Value> {
    let units = fields(vec![
        ("requests", count_value().boxed()),
        ("searches", count_value().boxed()),
        ("images", count_value().boxed()),
        ("pages", count_value().boxed()),
    ])
    .prop_map(object);
    fields(vec![
        ("user_id", id_value().boxed()),
        ("provider", id_value().boxed()),
        ("model", id_value().boxed()),
        ("estimated_input_tokens", count_value().boxed()),
        ("estimated_output_tokens", count_value().boxed()),
        ("units", prop_oneof![3 => units, 1 => leaf()].boxed()),
        (
            "reserve",
            prop_oneof![any::<bool>().prop_map(Value::Bool), leaf()].boxed(),
        ),
        ("reservation_ttl_seconds", count_value().boxed()),
    ])
    .prop_map(object)
}

/// A provider usage object of one of the known shapes (or a mix of them).
pub fn usage_object() -> impl Strategy<Value = Value> {
    let details = |k: &'static str| {
        prop_oneof![
            3 => fields(vec![(k, count_value().boxed())]).prop_map(object),
            1 => leaf(),
        ]
        .boxed()
    };
    let openai = fields(vec![
        ("prompt_tokens", count_value().boxed()),
        ("completion_tokens", count_value().boxed()),
        ("total_tokens", count_value().boxed()),
        ("prompt_tokens_details", details("cached_tokens")),
        ("completion_tokens_details", details("reasoning_tokens")),
    ]);
    let responses = fields(vec![
        ("input_tokens", count_value().boxed()),
        ("output_tokens", count_value().boxed()),
        ("input_tokens_details", details("cached_tokens")),
        ("output_tokens_details", details("reasoning_tokens")),
    ]);
    let anthropic = fields(vec![
        ("input_tokens", count_value().boxed()),
        ("output_tokens", count_value().boxed()),
        ("cache_read_input_tokens", count_value().boxed()),
        ("cache_creation_input_tokens", count_value().boxed()),
    ]);
    let gemini_inner = || {
        fields(vec![
            ("promptTokenCount", count_value().boxed()),
            ("candidatesTokenCount", count_value().boxed()),
            ("thoughtsTokenCount", count_value().boxed()),
            ("cachedContentTokenCount", count_value().boxed()),
            ("totalTokenCount", count_value().boxed()),
        ])
    };
    let gemini = prop_oneof![
        gemini_inner().prop_map(object),
        prop_oneof![gemini_inner().prop_map(object), leaf()]
            .prop_map(|m| object(vec![("usageMetadata".to_owned(), m)])),
    ];
    prop_oneof![
        openai.prop_map(object),
        responses.prop_map(object),
        anthropic.prop_map(object),
        gemini,
        // Keys of several shapes at once.
        (
            fields(vec![("prompt_tokens", count_value().boxed())]),
            fields(vec![
                ("input_tokens", count_value().boxed()),
                ("promptTokenCount", count_value().boxed())
            ])
        )
            .prop_map(|(mut a, b)| {
                a.extend(b);
                object(a)
            }),
    ]
}

fn event() -> impl Strategy<Value = Value> {
    let timestamp = prop_oneof![
        3 => (-3_100_000i64..400).prop_map(|s| {
            let t = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 15, 12, 0, 0)
                .unwrap()
                + chrono::Duration::seconds(s);
            Value::String(t.to_rfc3339())
        }),
        2 => string().prop_map(Value::String),
        1 => leaf(),
    ];
    let metadata = prop_oneof![
        3 => json(),
        1 => "[a-z]{0,8}"
            .prop_map(|k| object(vec![(k, Value::String("m".repeat(9000)))])),
    ];
    // Mostly valid ids, so that the optional fields are often reached and accepted.
    let valid =
        |s: &'static str| prop_oneof![9 => Just(Value::String(s.to_owned())), 1 => id_value()];
    let required = (valid("ev-1"), valid("u-1"), valid("gemini")).prop_map(|(e, u, p)| {
        vec![
            ("event_id".to_owned(), e),
            ("user_id".to_owned(), u),
            ("provider".to_owned(), p),
        ]
    });
    let optional = fields_weighted(
        vec![
            ("model", id_value().boxed()),
            ("timestamp", timestamp.boxed()),
            ("input_tokens", count_value().boxed()),
            ("output_tokens", count_value().boxed()),
            ("cached_input_tokens", count_value().boxed()),
            ("cache_write_tokens", count_value().boxed()),
            ("reasoning_tokens", count_value().boxed()),
            ("requests", count_value().boxed()),
            ("searches", count_value().boxed()),
            ("images", count_value().boxed()),
            ("pages", count_value().boxed()),
            ("input_chars", count_value().boxed()),
            ("output_chars", count_value().boxed()),
            (
                "usage",
                prop_oneof![3 => usage_object(), 1 => leaf()].boxed(),
            ),
            (
                "endpoint",
                prop_oneof![string().prop_map(Value::String), leaf()].boxed(),
            ),
            ("status_code", count_value().boxed()),
            ("latency_ms", count_value().boxed()),
            ("reservation_id", id_value().boxed()),
            ("metadata", metadata.boxed()),
        ],
        0.2,
    );
    (required, optional).prop_map(|(mut r, o)| {
        r.extend(o);
        object(r)
    })
}

/// One event, or a batch (sometimes with repeated ids, sometimes over the 100 limit).
pub fn usage_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => event(),
        2 => vec(event(), 0..6).prop_map(|events| object(vec![("events".into(), Value::Array(events))])),
        1 => (event(), 1usize..4).prop_map(|(e, n)| {
            object(vec![("events".into(), Value::Array(vec![e; n]))])
        }),
        1 => (event(), 99usize..=101).prop_map(|(e, n)| {
            let events = (0..n)
                .map(|i| {
                    let mut e = e.clone();
                    if let Value::Object(m) = &mut e {
                        m.insert("event_id".into(), Value::String(format!("e{i}")));
                    }
                    e
                })
                .collect();
            object(vec![("events".into(), Value::Array(events))])
        }),
        1 => (event(), json()).prop_map(|(e, extra)| {
            object(vec![("events".into(), Value::Array(vec![e])), ("extra".into(), extra)])
        }),
    ]
}

fn decimal_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0u64..1_000_000, 0u32..12).prop_map(|(m, s)| {
            Value::String(rust_decimal::Decimal::new(m as i64, s).to_string())
        }),
        2 => string().prop_map(Value::String),
        1 => number(),
    ]
}

fn flag() -> BoxedStrategy<Value> {
    prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => leaf()].boxed()
}

/// Subscription, plan and price-version bodies (each parser also gets the others').
pub fn admin_body() -> impl Strategy<Value = Value> {
    let choice = |names: &'static [&'static str]| {
        prop_oneof![
            3 => proptest::sample::select(names).prop_map(|s| Value::String(s.to_owned())),
            1 => leaf(),
        ]
        .boxed()
    };
    let subscription = fields(vec![
        (
            "plan",
            choice(&["free", "basic", "pro", "enterprise", "nope"]),
        ),
        ("billing_cycle", choice(&["monthly", "yearly", "weekly"])),
        ("anchor", choice(&["calendar", "anniversary"])),
        (
            "status",
            choice(&["active", "past_due", "suspended", "cancelled"]),
        ),
        ("auto_renew", flag()),
    ])
    .prop_map(object);
    let limits = btree_map(
        prop_oneof![
            3 => proptest::sample::select(&[
                "calls:gemini", "tokens:gemini", "calls:*", "tokens:*", "cost_usd",
                "calls:", "bogus", "calls:gemini:x"
            ][..])
            .prop_map(str::to_owned),
            1 => string(),
        ],
        prop_oneof![decimal_string(), count_value()],
        0..5,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()));
    let thresholds = prop_oneof![
        3 => vec(prop_oneof![(0u64..=120).prop_map(Value::from), number()], 0..5)
            .prop_map(Value::Array),
        1 => leaf(),
    ];
    let plan = fields(vec![
        (
            "name",
            prop_oneof![Just(Value::String("fuzz".into())), id_value()].boxed(),
        ),
        (
            "tier",
            choice(&["free", "basic", "pro", "enterprise", "custom", "gold"]),
        ),
        ("monthly_price_usd", decimal_string().boxed()),
        ("yearly_price_usd", decimal_string().boxed()),
        (
            "description",
            prop_oneof![string().prop_map(Value::String), leaf()].boxed(),
        ),
        (
            "features",
            prop_oneof![
                vec(string().prop_map(Value::String), 0..3).prop_map(Value::Array),
                leaf()
            ]
            .boxed(),
        ),
        ("alert_thresholds", thresholds.boxed()),
        ("limits", prop_oneof![3 => limits, 1 => leaf()].boxed()),
        ("overage_rate", decimal_string().boxed()),
        ("active", flag()),
    ])
    .prop_map(object);
    let tier = fields(vec![
        ("threshold", count_value().boxed()),
        ("inclusive", any::<bool>().prop_map(Value::Bool).boxed()),
        ("input", decimal_string().boxed()),
        ("output", decimal_string().boxed()),
        ("cache_read", decimal_string().boxed()),
    ])
    .prop_map(object);
    let prices = fields(vec![
        ("input_token", decimal_string().boxed()),
        ("output_token", decimal_string().boxed()),
        ("cache_read_token", decimal_string().boxed()),
        ("reasoning_token", decimal_string().boxed()),
        ("request", decimal_string().boxed()),
        ("search", decimal_string().boxed()),
        (
            "tiers",
            prop_oneof![vec(tier, 0..3).prop_map(Value::Array), leaf()].boxed(),
        ),
    ])
    .prop_map(object);
    let version = fields(vec![
        ("id", id_value().boxed()),
        ("provider", id_value().boxed()),
        ("model", id_value().boxed()),
        (
            "aliases",
            prop_oneof![vec(id_value(), 0..3).prop_map(Value::Array), leaf()].boxed(),
        ),
        (
            "effective_from",
            prop_oneof![
                Just(Value::String("2026-01-01T00:00:00Z".into())),
                string().prop_map(Value::String)
            ]
            .boxed(),
        ),
        (
            "effective_to",
            prop_oneof![
                Just(Value::String("2025-01-01T00:00:00Z".into())),
                Just(Value::String("2027-01-01T00:00:00Z".into())),
                leaf()
            ]
            .boxed(),
        ),
        ("prices", prop_oneof![3 => prices, 1 => leaf()].boxed()),
        ("source", Just(Value::String("tenant".into())).boxed()),
    ])
    .prop_map(object);
    let pricing = prop_oneof![
        4 => vec(version, 0..4),
        1 => vec(Just(Value::Null), 101..=101),
    ]
    .prop_map(|vs| object(vec![("versions".into(), Value::Array(vs))]));
    prop_oneof![subscription, plan, pricing]
}

/// Number literals as LiteLLM writes them, and some it does not: exponents, strings,
/// literals past f64 and Decimal, negative zero, garbage.
fn price_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (1u32..1000, 1u32..12).prop_map(|(m, e)| format!("{m}e-{e:02}")),
        2 => (0u64..100_000, 0u32..10).prop_map(|(m, s)| rust_decimal::Decimal::new(m as i64, s).to_string()),
        2 => proptest::sample::select(&[
            "0", "-0", "-0.0", "1E-06", "3.5e-07", "\"0.000002\"", "\"1e-6\"", "null", "true",
            "\"abc\"", "-1e-06", "1e400", "1e-400", "123456789012345678901234567890",
            "79228162514264337593543950336", "0.00000000000000000000000000001", "1e28",
            "[]", "{}", "\"\"", "\" 1\"",
        ][..])
        .prop_map(str::to_owned),
    ]
}

fn price_key() -> impl Strategy<Value = String> {
    let base = proptest::sample::select(
        &[
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_read_input_token_cost",
            "cache_creation_input_token_cost",
            "output_cost_per_reasoning_token",
            "input_cost_per_request",
            "input_cost_per_query",
            "output_cost_per_image",
            "ocr_cost_per_page",
            "output_cost_per_image_token",
            "input_cost_per_second",
            "input_cost_per_character",
            "output_cost_per_pixel",
        ][..],
    );
    let threshold = proptest::sample::select(
        &[
            "128k",
            "200000",
            "0",
            "1.5k",
            "1e3k",
            "-1k",
            "k",
            "",
            "18446744073709551615k",
            "99999999999999999999",
            "272k",
            "128K",
        ][..],
    );
    let suffix = proptest::sample::select(&["", "_priority", "_flex", "_batches", "_x"][..]);
    prop_oneof![
        3 => base.clone().prop_map(str::to_owned),
        2 => (base, threshold, suffix).prop_map(|(b, t, s)| format!("{b}_above_{t}_tokens{s}")),
    ]
}

fn tiered_pricing() -> impl Strategy<Value = String> {
    let bound = prop_oneof![
        (0u64..300_000).prop_map(|n| n.to_string()),
        proptest::sample::select(
            &["1e6", "-1", "0.5", "\"7\"", "null", "18446744073709551616"][..]
        )
        .prop_map(str::to_owned),
    ];
    let tier = (
        proptest::option::of((bound.clone(), bound)),
        vec((price_key(), price_literal()), 0..3),
    )
        .prop_map(|(range, prices)| {
            let mut parts: Vec<String> = prices
                .into_iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect();
            if let Some((a, b)) = range {
                parts.push(format!("\"range\": [{a}, {b}]"));
            }
            format!("{{{}}}", parts.join(", "))
        });
    prop_oneof![
        4 => vec(tier, 0..4).prop_map(|t| format!("[{}]", t.join(", "))),
        1 => Just("{}".to_owned()),
    ]
}

fn litellm_entry() -> impl Strategy<Value = String> {
    let provider = prop_oneof![
        proptest::sample::select(
            &[
                "\"openai\"",
                "\"xai\"",
                "\"fireworks_ai\"",
                "\"Gemini \"",
                "\"\"",
                "\"a b\"",
                "1",
                "null",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z_]{1,10}".prop_map(|s| format!("\"{s}\"")),
    ];
    (
        proptest::option::weighted(0.9, provider),
        vec((price_key(), price_literal()), 0..6),
        proptest::option::weighted(0.15, tiered_pricing()),
        proptest::option::weighted(0.05, Just("\"off_peak_pricing\": {}")),
        proptest::option::weighted(0.1, "[a-z0-9/.-]{0,20}"),
    )
        .prop_map(|(provider, prices, tiers, off_peak, alias)| {
            let mut parts: Vec<String> = prices
                .into_iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect();
            if let Some(p) = provider {
                parts.push(format!("\"litellm_provider\": {p}"));
            }
            if let Some(t) = tiers {
                parts.push(format!("\"tiered_pricing\": {t}"));
            }
            parts.extend(off_peak.map(str::to_owned));
            if let Some(a) = alias {
                parts.push(format!("\"alias_of\": \"{a}\""));
            }
            format!("{{{}}}", parts.join(", "))
        })
}

/// A LiteLLM price map as text, its numbers as literals (beyond what `f64` holds).
pub fn litellm_text() -> impl Strategy<Value = String> {
    let model = prop_oneof![
        3 => "[a-z0-9.-]{1,16}",
        1 => "[a-z]{2,8}/[a-z0-9.-]{0,12}",
        1 => proptest::sample::select(&["sample_spec", "", "a b", "é"][..]).prop_map(str::to_owned),
    ];
    let entry = prop_oneof![
        6 => litellm_entry(),
        1 => proptest::sample::select(&["null", "[]", "1", "\"x\"", "{\"alias_of\": 3}"][..])
            .prop_map(str::to_owned),
    ];
    vec((model, entry), 0..6).prop_map(|entries| {
        let parts: Vec<String> = entries
            .into_iter()
            .map(|(k, v)| format!("{}: {v}", Value::String(k)))
            .collect();
        format!("{{{}}}", parts.join(", "))
    })
}

/// Random edits of `text`: byte replacements, insertions, deletions, truncation.
fn mutate(text: String, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    for (at, op, byte) in edits {
        let at = if bytes.is_empty() {
            0
        } else {
            at % (bytes.len() + 1)
        };
        match op % 4 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            _ => {}
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    let byte = prop_oneof![
        3 => proptest::sample::select(&b"{}[]\":,0123456789-+.eE \\nutfals"[..]),
        1 => any::<u8>(),
    ];
    vec((any::<usize>(), 0u8..8, byte), 0..5)
}

/// Request bodies as JSON text with a few byte-level edits.
pub fn mutated_bytes() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        usage_body(),
        check_body(),
        admin_body(),
        usage_object(),
        json()
    ];
    (body, edits()).prop_map(|(v, e)| mutate(v.to_string(), e))
}

/// LiteLLM maps as text with a few byte-level edits (lossily made UTF-8, as a file read is).
pub fn mutated_litellm_text() -> impl Strategy<Value = String> {
    (litellm_text(), edits()).prop_map(|(t, e)| String::from_utf8_lossy(&mutate(t, e)).into_owned())
}

/// Usage to price at imported prices, up to the 10^12 bound (and consistent or not).
pub fn usage_counts() -> impl Strategy<Value = UsageCounts> {
    let c = || {
        prop_oneof![
            3 => 0u64..1_000_000,
            1 => Just(1_000_000_000_000u64),
            1 => 0u64..=1_000_000_000_000,
        ]
    };
    (c(), c(), c(), c(), c(), c(), c()).prop_map(|(i, o, cr, cw, r, req, s)| UsageCounts {
        input_tokens: i,
        output_tokens: o,
        cached_input_tokens: cr.min(i),
        cache_write_tokens: cw.min(i - cr.min(i)),
        reasoning_tokens: r.min(o),
        requests: req,
        searches: s,
        ..UsageCounts::default()
    })
}
