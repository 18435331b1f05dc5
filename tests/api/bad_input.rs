//! At least 40 distinct malformed or unauthorised requests: each gets a 4xx JSON error
//! with a stable code, and the store is unchanged afterwards.

use axum::body::Body;
use axum::http::Request;
use meter_tests::TestApp;
use serde_json::{json, Value};

enum Key {
    Service,
    Admin,
    None,
    Raw(&'static str),
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    key: Key,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, path: &str, body: Value, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: path.to_owned(),
        key: Key::Service,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        status,
        code,
    }
}

const CHECK: &str = "/api/subscription/check";
const USAGE: &str = "/api/subscription/usage";

fn ev(overrides: Value) -> Value {
    let mut base = json!({"event_id": "bad-1", "user_id": "victim", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10});
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn cases() -> Vec<Case> {
    let now = chrono::Utc::now();
    let old = (now - chrono::Duration::days(36)).to_rfc3339();
    let future = (now + chrono::Duration::minutes(10)).to_rfc3339();
    let long_id = "u".repeat(129);
    let mut v = vec![
        // Authentication and authorisation.
        Case {
            key: Key::None,
            ..case(
                "no key",
                CHECK,
                json!({"user_id": "victim", "provider": "gemini"}),
                401,
                "unauthorized",
            )
        },
        Case {
            key: Key::Raw("mk_thisisnotarealkeyatall_000000000000000"),
            ..case(
                "unknown key",
                CHECK,
                json!({"user_id": "victim", "provider": "gemini"}),
                401,
                "unauthorized",
            )
        },
        Case {
            key: Key::Raw("x"),
            ..case("short key", USAGE, ev(json!({})), 401, "unauthorized")
        },
        // Content type, encoding, syntax, size.
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain body",
                USAGE,
                ev(json!({})),
                415,
                "unsupported_media_type",
            )
        },
        Case {
            content_type: None,
            ..case(
                "no content type",
                CHECK,
                json!({"user_id": "victim", "provider": "gemini"}),
                415,
                "unsupported_media_type",
            )
        },
        Case {
            body: b"{\"user_id\": \"victim\",".to_vec(),
            ..case("truncated JSON", CHECK, json!({}), 400, "malformed_json")
        },
        Case {
            body: vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            ..case("invalid UTF-8", USAGE, json!({}), 400, "invalid_utf8")
        },
        Case {
            body: b"".to_vec(),
            ..case("empty body", CHECK, json!({}), 400, "malformed_json")
        },
        Case {
            body: format!(
                "{{\"events\": [{}]}}",
                vec![ev(json!({})).to_string(); 1].join(",")
            )
            .replace(
                "}]}",
                &format!(
                    ",\"metadata\":{{\"pad\":\"{}\"}}}}]}}",
                    "x".repeat(1_100_000)
                ),
            )
            .into_bytes(),
            ..case(
                "body over 1 MiB",
                USAGE,
                json!({}),
                413,
                "payload_too_large",
            )
        },
        // Shapes.
        case(
            "body is an array",
            CHECK,
            json!([1, 2]),
            422,
            "invalid_type",
        ),
        case(
            "body is a string",
            USAGE,
            json!("hello"),
            422,
            "invalid_type",
        ),
        case(
            "missing user_id",
            CHECK,
            json!({"provider": "gemini"}),
            422,
            "missing_field",
        ),
        case(
            "user_id not a string",
            CHECK,
            json!({"user_id": 42, "provider": "gemini"}),
            422,
            "invalid_type",
        ),
        case(
            "user_id with a hash",
            CHECK,
            json!({"user_id": "a#b", "provider": "gemini"}),
            422,
            "invalid_id",
        ),
        case(
            "user_id too long",
            CHECK,
            json!({"user_id": long_id, "provider": "gemini"}),
            422,
            "invalid_id",
        ),
        case(
            "provider uppercase",
            CHECK,
            json!({"user_id": "victim", "provider": "Gemini"}),
            422,
            "invalid_id",
        ),
        case(
            "neither provider nor model",
            CHECK,
            json!({"user_id": "victim"}),
            422,
            "missing_field",
        ),
        case(
            "negative estimate",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "estimated_input_tokens": -1}),
            422,
            "out_of_range",
        ),
        case(
            "fractional estimate",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "estimated_input_tokens": 1.5}),
            422,
            "invalid_type",
        ),
        case(
            "estimate over 10^12",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "estimated_input_tokens": 1_000_000_000_001u64}),
            422,
            "out_of_range",
        ),
        case(
            "estimate as string",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "estimated_output_tokens": "12"}),
            422,
            "invalid_type",
        ),
        case(
            "reserve not a bool",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "reserve": "yes"}),
            422,
            "invalid_type",
        ),
        case(
            "ttl too long",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "reserve": true, "reservation_ttl_seconds": 3601}),
            422,
            "out_of_range",
        ),
        case(
            "ttl zero",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "reserve": true, "reservation_ttl_seconds": 0}),
            422,
            "out_of_range",
        ),
        case(
            "unknown check field",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "estimated_tokens": 5}),
            422,
            "unknown_field",
        ),
        case(
            "units not an object",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "units": 3}),
            422,
            "invalid_type",
        ),
        case(
            "unknown unit",
            CHECK,
            json!({"user_id": "victim", "provider": "gemini", "units": {"videos": 1}}),
            422,
            "unknown_field",
        ),
        case(
            "ambiguous model without provider",
            CHECK,
            json!({"user_id": "victim", "model": "no-such-model-anywhere"}),
            422,
            "unknown_model",
        ),
        // Usage batches.
        case(
            "empty batch",
            USAGE,
            json!({"events": []}),
            422,
            "batch_size",
        ),
        case(
            "batch of 101",
            USAGE,
            json!({"events": (0..101).map(|i| ev(json!({"event_id": format!("b-{i}")}))).collect::<Vec<_>>()}),
            422,
            "batch_size",
        ),
        case(
            "events not an array",
            USAGE,
            json!({"events": {"a": 1}}),
            422,
            "invalid_type",
        ),
        case(
            "extra top-level field",
            USAGE,
            json!({"events": [ev(json!({}))], "dry_run": true}),
            422,
            "unknown_field",
        ),
        case(
            "missing event_id",
            USAGE,
            ev(json!({"event_id": null})),
            422,
            "invalid_events",
        ),
        case(
            "event_id with space",
            USAGE,
            ev(json!({"event_id": "a b"})),
            422,
            "invalid_events",
        ),
        case(
            "negative tokens",
            USAGE,
            ev(json!({"input_tokens": -5})),
            422,
            "invalid_events",
        ),
        case(
            "tokens overflow u64",
            USAGE,
            ev(json!({"output_tokens": 18446744073709551616.0})),
            422,
            "invalid_events",
        ),
        case(
            "tokens over 10^12",
            USAGE,
            ev(json!({"input_tokens": 2_000_000_000_000u64})),
            422,
            "invalid_events",
        ),
        case(
            "cached above input",
            USAGE,
            ev(json!({"input_tokens": 10, "cached_input_tokens": 11})),
            422,
            "invalid_events",
        ),
        case(
            "reasoning above output",
            USAGE,
            ev(json!({"output_tokens": 1, "reasoning_tokens": 2})),
            422,
            "invalid_events",
        ),
        case(
            "timestamp not RFC 3339",
            USAGE,
            ev(json!({"timestamp": "yesterday"})),
            422,
            "invalid_events",
        ),
        case(
            "timestamp too old",
            USAGE,
            ev(json!({"timestamp": old})),
            422,
            "invalid_events",
        ),
        case(
            "timestamp in the future",
            USAGE,
            ev(json!({"timestamp": future})),
            422,
            "invalid_events",
        ),
        case(
            "status code 42",
            USAGE,
            ev(json!({"status_code": 42})),
            422,
            "invalid_events",
        ),
        case(
            "status code 600",
            USAGE,
            ev(json!({"status_code": 600})),
            422,
            "invalid_events",
        ),
        case(
            "metadata not an object",
            USAGE,
            ev(json!({"metadata": [1]})),
            422,
            "invalid_events",
        ),
        case(
            "usage object and token fields",
            USAGE,
            ev(json!({"usage": {"prompt_tokens": 1, "completion_tokens": 1}})),
            422,
            "invalid_events",
        ),
        case(
            "usage object of no known shape",
            USAGE,
            ev(json!({"input_tokens": null, "usage": {"tokens": 5}})),
            422,
            "invalid_events",
        ),
        case(
            "unknown event field",
            USAGE,
            ev(json!({"input_token": 5})),
            422,
            "invalid_events",
        ),
        case(
            "one bad event rejects the batch",
            USAGE,
            json!({"events": [ev(json!({"event_id": "good-1"})), ev(json!({"event_id": "bad-2", "latency_ms": -1}))]}),
            422,
            "invalid_events",
        ),
        case(
            "same id twice, different content",
            USAGE,
            json!({"events": [ev(json!({"input_tokens": 1})), ev(json!({"input_tokens": 2}))]}),
            422,
            "invalid_events",
        ),
        case(
            "model unknown without provider",
            USAGE,
            ev(json!({"provider": null, "model": "mystery-model-7"})),
            422,
            "invalid_events",
        ),
        // Routes and ids.
        case(
            "unknown reservation",
            "/api/subscription/reservations/rsv_0123456789abcdef0123456789abcdef_dmljdGlt/release",
            json!({}),
            404,
            "not_found",
        ),
        case(
            "not a reservation id",
            "/api/subscription/reservations/hello/release",
            json!({}),
            404,
            "not_found",
        ),
        case(
            "unknown route",
            "/api/subscription/nothing",
            json!({}),
            404,
            "route_not_found",
        ),
        Case {
            method: "GET",
            ..case("wrong method", CHECK, json!({}), 405, "method_not_allowed")
        },
        Case {
            method: "DELETE",
            ..case("delete usage", USAGE, json!({}), 405, "method_not_allowed")
        },
    ];
    // The admin key may do what a service key may.
    v.push(Case {
        key: Key::Admin,
        ..case(
            "admin key, bad body",
            CHECK,
            json!({"user_id": "", "provider": "gemini"}),
            422,
            "invalid_id",
        )
    });
    v
}

#[tokio::test]
async fn every_malformed_request_gets_a_4xx_json_error_and_changes_nothing() {
    let app = TestApp::spawn().await;
    // Some real usage first, so "unchanged" is not trivially zero.
    let seed = app.usage(json!({"event_id": "seed-1", "user_id": "victim", "provider": "gemini", "model": "gemini-2.5-flash", "input_tokens": 10})).await;
    assert_eq!(seed.status, 200, "{:?}", seed.body);
    let before = app.snapshot("victim").await;

    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let mut req = Request::builder().method(c.method).uri(&c.path);
        match c.key {
            Key::Service => {
                req = req.header("authorization", format!("Bearer {}", app.service_key))
            }
            Key::Admin => req = req.header("authorization", format!("Bearer {}", app.admin_key)),
            Key::Raw(k) => req = req.header("authorization", format!("Bearer {k}")),
            Key::None => {}
        }
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        let reply = app.send(req.body(Body::from(c.body)).unwrap()).await;
        let ok = reply.status.as_u16() == c.status
            && reply.body["success"] == false
            && reply.code() == c.code;
        if !ok {
            failures.push(format!(
                "{}: got {} {} ({})",
                c.name,
                reply.status,
                reply.code(),
                reply.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        app.snapshot("victim").await,
        before,
        "a rejected request changed the store"
    );
}
