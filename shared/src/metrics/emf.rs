//! CloudWatch embedded metric format (EMF): the Lambda functions write their metrics as
//! JSON lines to stdout, which Lambda sends to the function's log group, where CloudWatch
//! extracts them as metrics (no API call, no extra permission).
//!
//! Each flush writes what changed since the previous one ([`super::Registry::take_changes`]):
//! one JSON object per line for each distinct label set, in namespace [`NAMESPACE`], with
//! the dimension `stack` (the CloudFormation stack, from `METER_STACK`) and the family's
//! labels as further dimensions. The HTTP functions flush once per invocation, after the
//! response is built ([`per_invocation`]); the aggregation after each pass. A flush per
//! invocation means nothing is lost when Lambda freezes or retires an idle environment,
//! at the price of one or two extra log lines per request.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::LazyLock;

use axum::response::Response;
use axum::Router;
use serde_json::{json, Map, Value};

use super::Sample;

/// The CloudWatch namespace of every meter metric.
pub const NAMESPACE: &str = "meter";

/// The dimension that tells stacks (stages) in one account apart.
pub const STACK_DIMENSION: &str = "stack";

static STACK: LazyLock<String> = LazyLock::new(|| {
    std::env::var("METER_STACK")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local".to_owned())
});

/// The EMF documents of `samples`, one line each: the samples that share a label set
/// share a line.
pub fn lines(samples: &[Sample], stack: &str, timestamp_ms: i64) -> Vec<String> {
    let mut groups: BTreeMap<Vec<(&str, &str)>, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        let labels = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        groups.entry(labels).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(labels, samples)| {
            let mut dimensions = vec![STACK_DIMENSION];
            dimensions.extend(labels.iter().map(|(k, _)| *k));
            let metrics: Vec<Value> = samples
                .iter()
                .map(|s| json!({ "Name": s.family.name, "Unit": s.family.unit }))
                .collect();
            let mut doc = Map::new();
            doc.insert(
                "_aws".to_owned(),
                json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [dimensions],
                        "Metrics": metrics,
                    }],
                }),
            );
            doc.insert(STACK_DIMENSION.to_owned(), json!(stack));
            for (k, v) in &labels {
                doc.insert((*k).to_owned(), json!(v));
            }
            for s in samples {
                doc.insert(s.family.name.to_owned(), json!(s.value));
            }
            Value::Object(doc).to_string()
        })
        .collect()
}

/// Writes the changes of the global registry to stdout as EMF lines (nothing when
/// nothing changed).
pub fn flush() {
    let changes = super::global().take_changes();
    if changes.is_empty() {
        return;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut out = std::io::stdout().lock();
    for line in lines(&changes, &STACK, now) {
        // A metric line that cannot be written is lost; the request is not failed for it.
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

async fn flush_after(response: Response) -> Response {
    flush();
    response
}

/// `router` with an EMF flush after every response: what each Lambda invocation changed
/// is written before the runtime returns the response.
pub fn per_invocation(router: Router) -> Router {
    router.layer(axum::middleware::map_response(flush_after))
}

#[cfg(test)]
mod tests {
    use super::super::{Registry, CHECKS, CHECK_DENIALS, HOLDS_EXPIRED, INVOICES_CREATED};
    use super::*;

    #[test]
    fn each_label_set_is_one_emf_document_with_stack_and_label_dimensions() {
        let r = Registry::new();
        r.add(&CHECKS, &["denied"], 2);
        r.add(&CHECK_DENIALS, &["calls:gemini"], 2);
        r.add(&INVOICES_CREATED, &[], 3);
        r.add(&HOLDS_EXPIRED, &[], 1);
        let lines = lines(&r.take_changes(), "meter-prod", 1_800_000_000_123);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        let docs: Vec<Value> = lines
            .iter()
            .map(|l| {
                assert!(!l.contains('\n'), "one document per line");
                serde_json::from_str(l).unwrap()
            })
            .collect();

        // The two label-less counters share one document.
        let plain = docs
            .iter()
            .find(|d| d.get("meter_invoices_created_total").is_some())
            .unwrap();
        assert_eq!(
            plain,
            &json!({
                "_aws": {
                    "Timestamp": 1_800_000_000_123_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "meter",
                        "Dimensions": [["stack"]],
                        "Metrics": [
                            {"Name": "meter_invoices_created_total", "Unit": "Count"},
                            {"Name": "meter_holds_expired_total", "Unit": "Count"},
                        ],
                    }],
                },
                "stack": "meter-prod",
                "meter_invoices_created_total": 3,
                "meter_holds_expired_total": 1,
            })
        );
        let denial = docs
            .iter()
            .find(|d| d.get("meter_check_denials_total").is_some())
            .unwrap();
        assert_eq!(
            denial["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["stack", "metric"]])
        );
        assert_eq!(denial["metric"], "calls:gemini");
        assert_eq!(denial["meter_check_denials_total"], 2);

        // Every dimension and every metric a directive names is a member of its document
        // (the EMF specification's "target members").
        for d in &docs {
            let directive = &d["_aws"]["CloudWatchMetrics"][0];
            for dim in directive["Dimensions"][0].as_array().unwrap() {
                assert!(d[dim.as_str().unwrap()].is_string(), "{d}");
            }
            for m in directive["Metrics"].as_array().unwrap() {
                assert!(d[m["Name"].as_str().unwrap()].is_u64(), "{d}");
            }
        }
    }

    #[test]
    fn nothing_changed_writes_nothing() {
        assert!(lines(&[], "s", 0).is_empty());
    }
}
