//! The Prometheus text exposition format (version 0.0.4) of the registry, for `GET
//! /metrics` of `meter serve`.

use std::fmt::Write as _;

use super::{Kind, Sample, FAMILIES};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value with `\`, `"` and line feeds escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// Every family's `# HELP` and `# TYPE` lines, then its samples (a family without any yet
/// has only the two comment lines).
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    for family in FAMILIES {
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {kind}", family.name);
        for s in samples.iter().filter(|s| s.family == family) {
            out.push_str(family.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(out, " {}", s.value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Registry, CHECKS, CHECK_DENIALS, OUTBOX_OLDEST_AGE};
    use super::*;

    #[test]
    fn samples_render_under_their_family_with_escaped_labels() {
        let r = Registry::new();
        r.add(&CHECKS, &["allowed"], 7);
        r.add(&CHECK_DENIALS, &["odd\"metric\\"], 1);
        r.set(&OUTBOX_OLDEST_AGE, &[], 42);
        let text = render(&r.snapshot());
        assert!(text.contains(
            "# TYPE meter_checks_total counter\nmeter_checks_total{outcome=\"allowed\"} 7\n"
        ));
        assert!(text.contains("meter_check_denials_total{metric=\"odd\\\"metric\\\\\"} 1\n"));
        assert!(text.contains(
            "# TYPE meter_outbox_oldest_age_seconds gauge\nmeter_outbox_oldest_age_seconds 42\n"
        ));
        // Every family is announced, with or without samples.
        for f in FAMILIES {
            assert!(text.contains(&format!("# HELP {} ", f.name)), "{}", f.name);
        }
        // Every line is a comment or `name[{labels}] value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line}");
            assert!(series.starts_with("meter_"), "{line}");
        }
    }
}
