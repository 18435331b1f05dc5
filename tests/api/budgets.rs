//! Budgets through the router: PUT/GET/DELETE `/budgets/{budget_id}`, GET `/budgets?…`,
//! their roles, their refusals (422/400/404/409 with stable codes, nothing stored).

use serde_json::{json, Value};

use meter_tests::TestApp;

const P: &str = "/api/subscription";

fn path(id: &str) -> String {
    format!("{P}/budgets/{id}")
}

/// Every member of acme at most $20 a month and 1,000 gemini calls.
fn member_cap() -> Value {
    json!({
        "scope": {"kind": "org", "org_id": "acme"},
        "applies_to": "each_member",
        "limits": {"cost_usd": "20.00", "calls:gemini": 1000},
        "window": "month",
        "mode": "hard"
    })
}

#[tokio::test]
async fn a_budget_is_created_replaced_read_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let r = app.put(&path("acme-members"), member_cap()).await;
    r.assert_ok("create");
    let data = &r.body["data"];
    assert_eq!(data["created"], true);
    let b = &data["budget"];
    assert_eq!(b["budget_id"], "acme-members");
    assert_eq!(b["scope"], json!({"kind": "org", "org_id": "acme"}));
    assert_eq!(b["applies_to"], "each_member");
    // Counts as integers, money as an exact decimal string (trailing zeros dropped).
    assert_eq!(b["limits"], json!({"calls:gemini": 1000, "cost_usd": "20"}));
    assert_eq!(
        (b["window"].as_str(), b["mode"].as_str()),
        (Some("month"), Some("hard"))
    );
    assert_eq!(b["alert_thresholds"], json!([80, 90, 100]));
    assert_eq!(b["version"], 1);

    // Replace: same id and scope, new limits; the version moves on.
    let mut raised = member_cap();
    raised["limits"] = json!({"cost_usd": "35.5"});
    raised["mode"] = json!("soft");
    raised["alert_thresholds"] = json!([50, 100]);
    raised["budget_id"] = json!("acme-members");
    let r = app.put(&path("acme-members"), raised).await;
    r.assert_ok("replace");
    assert_eq!(r.body["data"]["created"], false);
    assert_eq!(r.body["data"]["budget"]["version"], 2);

    let got = app.get(&path("acme-members")).await;
    got.assert_ok("get");
    assert_eq!(got.body["data"], r.body["data"]["budget"]);
    assert_eq!(got.body["data"]["limits"], json!({"cost_usd": "35.5"}));

    // A team budget beside it: lists hold exactly their scope.
    let team = json!({"scope": {"kind": "team", "org_id": "acme", "team_id": "red"},
                      "limits": {"calls:*": 60}, "window": "minute", "mode": "hard"});
    app.put(&path("red-rate"), team).await.assert_ok("team");
    let org = app.get(&format!("{P}/budgets?org_id=acme")).await;
    org.assert_ok("org list");
    assert_eq!(
        org.body["data"]["scope"],
        json!({"kind": "org", "org_id": "acme"})
    );
    assert_eq!(org.body["data"]["max_budgets"], 32);
    let ids: Vec<&str> = org.body["data"]["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["budget_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-members"]);
    let red = app
        .get(&format!("{P}/budgets?org_id=acme&team_id=red"))
        .await;
    assert_eq!(red.body["data"]["budgets"][0]["budget_id"], "red-rate");
    assert_eq!(red.body["data"]["budgets"][0]["applies_to"], "scope");
    let alice = app.get(&format!("{P}/budgets?user_id=alice")).await;
    assert_eq!(alice.body["data"]["budgets"], json!([]));

    let del = app.delete(&path("acme-members")).await;
    del.assert_ok("delete");
    assert_eq!(del.body["data"]["deleted"], true);
    assert_eq!(del.body["data"]["budget"]["version"], 2);
    let gone = app.get(&path("acme-members")).await;
    assert_eq!((gone.status.as_u16(), gone.code()), (404, "not_found"));
    let again = app.delete(&path("acme-members")).await;
    assert_eq!((again.status.as_u16(), again.code()), (404, "not_found"));
    let org = app.get(&format!("{P}/budgets?org_id=acme")).await;
    assert_eq!(org.body["data"]["budgets"], json!([]));
}

#[tokio::test]
async fn moving_a_budget_to_another_scope_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.put(&path("cap"), member_cap())
        .await
        .assert_ok("create");
    let mut moved = member_cap();
    moved["scope"] = json!({"kind": "team", "org_id": "acme", "team_id": "red"});
    let r = app.put(&path("cap"), moved).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "conflict"),
        "{}",
        r.body
    );
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("org#acme"), "{message}");
    let kept = app.get(&path("cap")).await;
    assert_eq!(kept.body["data"]["version"], 1);
    assert_eq!(kept.body["data"]["scope"]["kind"], "org");
    let red = app
        .get(&format!("{P}/budgets?org_id=acme&team_id=red"))
        .await;
    assert_eq!(red.body["data"]["budgets"], json!([]));
}

#[tokio::test]
async fn a_scope_takes_32_budgets_and_refuses_the_33rd() {
    let app = TestApp::spawn().await;
    let body = json!({"scope": {"kind": "user", "user_id": "alice"},
                      "limits": {"cost_usd": 1}, "window": "day", "mode": "soft"});
    for i in 0..32 {
        app.put(&path(&format!("b{i:02}")), body.clone())
            .await
            .assert_ok("within the cap");
    }
    let r = app.put(&path("b32"), body.clone()).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "too_many_budgets"),
        "{}",
        r.body
    );
    assert_eq!(r.body["error"]["details"]["errors"][0]["field"], "scope");
    assert_eq!(app.get(&path("b32")).await.status, 404);
    // Replacing one of the 32 is still fine.
    app.put(&path("b00"), body)
        .await
        .assert_ok("replace in a full scope");
}

#[tokio::test]
async fn bad_budget_bodies_are_refused_with_field_codes_and_store_nothing() {
    let app = TestApp::spawn().await;
    let with = |field: &str, value: Value| {
        let mut b = member_cap();
        b[field] = value;
        b
    };
    let without = |field: &str| {
        let mut b = member_cap();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "unknown field",
            with("limit", json!({})),
            "unknown_field",
            "limit",
        ),
        (
            "version is not an input",
            with("version", json!(3)),
            "unknown_field",
            "version",
        ),
        ("null", with("mode", Value::Null), "invalid_type", "mode"),
        ("no scope", without("scope"), "missing_field", "scope"),
        ("no limits", without("limits"), "missing_field", "limits"),
        ("no window", without("window"), "missing_field", "window"),
        ("no mode", without("mode"), "missing_field", "mode"),
        (
            "unknown kind",
            with("scope", json!({"kind": "galaxy", "org_id": "a"})),
            "invalid_value",
            "scope.kind",
        ),
        (
            "no kind",
            with("scope", json!({"org_id": "a"})),
            "missing_field",
            "scope.kind",
        ),
        (
            "team without org",
            with("scope", json!({"kind": "team", "team_id": "red"})),
            "team_without_org",
            "scope.team_id",
        ),
        (
            "org id on a user scope",
            with(
                "scope",
                json!({"kind": "user", "user_id": "u", "org_id": "a"}),
            ),
            "unknown_field",
            "scope.org_id",
        ),
        (
            "unknown scope field",
            with("scope", json!({"kind": "org", "org_id": "a", "x": 1})),
            "unknown_field",
            "scope.x",
        ),
        (
            "bad org id",
            with("scope", json!({"kind": "org", "org_id": "a#b"})),
            "invalid_id",
            "scope.org_id",
        ),
        (
            "scope not an object",
            with("scope", json!("org:acme")),
            "invalid_type",
            "scope",
        ),
        (
            "each_member on a user",
            {
                let mut b = with("scope", json!({"kind": "user", "user_id": "alice"}));
                b["applies_to"] = json!("each_member");
                b
            },
            "each_member_on_user",
            "applies_to",
        ),
        (
            "unknown applies_to",
            with("applies_to", json!("everyone")),
            "invalid_value",
            "applies_to",
        ),
        (
            "unknown window",
            with("window", json!("fortnight")),
            "invalid_value",
            "window",
        ),
        (
            "unknown mode",
            with("mode", json!("strict")),
            "invalid_value",
            "mode",
        ),
        (
            "unknown metric",
            with("limits", json!({"calls": 5})),
            "unknown_metric",
            "limits.calls",
        ),
        (
            "bad provider",
            with("limits", json!({"calls:OpenAI": 5})),
            "unknown_metric",
            "limits.calls:OpenAI",
        ),
        (
            "empty limits",
            with("limits", json!({})),
            "no_limits",
            "limits",
        ),
        (
            "limits not an object",
            with("limits", json!([1])),
            "invalid_type",
            "limits",
        ),
        (
            "negative string",
            with("limits", json!({"cost_usd": "-0.01"})),
            "negative_limit",
            "limits",
        ),
        (
            "negative integer",
            with("limits", json!({"calls:*": -1})),
            "negative_limit",
            "limits",
        ),
        (
            "float money",
            with("limits", json!({"cost_usd": 2.5})),
            "invalid_limit",
            "limits.cost_usd",
        ),
        (
            "exponent",
            with("limits", json!({"cost_usd": "1e3"})),
            "invalid_limit",
            "limits.cost_usd",
        ),
        (
            "10^15 as a string",
            with("limits", json!({"cost_usd": "1000000000000000"})),
            "limit_too_large",
            "limits.cost_usd",
        ),
        (
            "10^15 as an integer",
            with("limits", json!({"calls:*": 1_000_000_000_000_000u64})),
            "limit_too_large",
            "limits.calls:*",
        ),
        (
            "fractional calls",
            with("limits", json!({"calls:*": "1.5"})),
            "fractional_limit",
            "limits",
        ),
        (
            "threshold 0",
            with("alert_thresholds", json!([0, 50])),
            "threshold_out_of_range",
            "alert_thresholds",
        ),
        (
            "threshold 101",
            with("alert_thresholds", json!([101])),
            "threshold_out_of_range",
            "alert_thresholds",
        ),
        (
            "thresholds descending",
            with("alert_thresholds", json!([90, 80])),
            "thresholds_not_ascending",
            "alert_thresholds",
        ),
        (
            "threshold not a number",
            with("alert_thresholds", json!(["80"])),
            "invalid_type",
            "alert_thresholds",
        ),
        (
            "budget_id mismatch",
            with("budget_id", json!("other")),
            "budget_id_mismatch",
            "budget_id",
        ),
    ];
    for (case, body, code, field) in cases {
        let r = app.put(&path("probe"), body).await;
        assert_eq!(r.status, 422, "{case}: {}", r.body);
        assert_eq!(r.code(), code, "{case}: {}", r.body);
        assert_eq!(
            r.body["error"]["details"]["errors"][0]["field"], field,
            "{case}: {}",
            r.body
        );
        assert_eq!(app.get(&path("probe")).await.status, 404, "{case}: stored");
    }
    // Several mistakes at once are all reported.
    let r = app
        .put(
            &path("probe"),
            json!({"scope": {"kind": "org"}, "window": "year", "limits": {"cost_usd": 1}}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (422, "validation_failed"));
    let fields: Vec<&str> = r.body["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["scope.org_id", "window", "mode"]);
}

#[tokio::test]
async fn budget_ids_and_list_queries_are_checked() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(129);
    for (url, status, code) in [
        (path(&long), 400, "invalid_id"),
        (path("a%23b"), 400, "invalid_id"),
        (path("nope"), 404, "not_found"),
        (format!("{P}/budgets"), 400, "invalid_parameter"),
        (format!("{P}/budgets?team_id=red"), 400, "team_without_org"),
        (
            format!("{P}/budgets?user_id=u&team_id=red"),
            400,
            "team_without_org",
        ),
        (
            format!("{P}/budgets?user_id=u&org_id=acme"),
            400,
            "invalid_parameter",
        ),
        (
            format!("{P}/budgets?org_id=acme&org_id=globex"),
            400,
            "invalid_parameter",
        ),
        (format!("{P}/budgets?org=acme"), 400, "unknown_parameter"),
        (format!("{P}/budgets?org_id=a%23b"), 400, "invalid_id"),
        (
            format!("{P}/budgets?org_id=acme&team_id="),
            400,
            "invalid_id",
        ),
    ] {
        let r = app.get(&url).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (status, code),
            "{url}: {}",
            r.body
        );
    }
    let r = app.put(&path(&long), member_cap()).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "invalid_id"));
    let r = app.delete(&path("nope")).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"));
}

#[tokio::test]
async fn writes_need_the_admin_key_and_reads_a_service_key() {
    let app = TestApp::spawn().await;
    let service = app.service_key.clone();
    let r = app.put_as(&service, &path("cap"), member_cap()).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    assert_eq!(
        app.get(&path("cap")).await.status,
        404,
        "stored by a service key"
    );
    app.put(&path("cap"), member_cap()).await.assert_ok("admin");
    let r = app.delete_as(&service, &path("cap")).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    app.get(&path("cap")).await.assert_ok("service reads");
    let admin = app.admin_key.clone();
    app.get_as(&admin, &format!("{P}/budgets?org_id=acme"))
        .await
        .assert_ok("admin reads too");
    for r in [
        app.get_as("", &path("cap")).await,
        app.get_as(
            "mk_not_a_key_00000000000000000000",
            &format!("{P}/budgets?org_id=acme"),
        )
        .await,
    ] {
        assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));
    }
}
