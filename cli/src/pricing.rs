//! `meter pricing quote`: one JSON line of cost per JSON line of event, in order.

use std::io::{self, BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use meter_core::domain::{ModelId, ProviderId};
use meter_core::pricing::{litellm, Catalog, PriceOutcome};
use meter_core::usage::normalise::event_counts;
use serde::Serialize;
use serde_json::{Map, Value};

/// Catalog file formats `--format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    Native,
    Litellm,
}

impl std::str::FromStr for CatalogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(Self::Native),
            "litellm" => Ok(Self::Litellm),
            other => Err(format!(
                "unknown catalog format `{other}` (native, litellm)"
            )),
        }
    }
}

/// Loads a catalog file; a LiteLLM map's versions start at `effective_from`.
/// Returns the catalog and, for LiteLLM, the import summary.
pub fn load_catalog(
    path: &Path,
    format: CatalogFormat,
    effective_from: DateTime<Utc>,
) -> anyhow::Result<(Catalog, Option<litellm::ImportSummary>)> {
    let text = std::fs::read_to_string(path)?;
    match format {
        CatalogFormat::Native => Ok((Catalog::from_native_json(&text)?, None)),
        CatalogFormat::Litellm => {
            let (catalog, summary) = litellm::import_catalog(&text, effective_from)?;
            Ok((catalog, Some(summary)))
        }
    }
}

/// How many lines a quote run read, priced, left unpriced and rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QuoteStats {
    pub lines: u64,
    pub priced: u64,
    pub unpriced: u64,
    pub errors: u64,
}

#[derive(Serialize)]
struct Quote<'a> {
    /// Exact decimal string; `null` when unpriced.
    cost_usd: Option<String>,
    priced: bool,
    estimated: bool,
    price_version: Option<&'a str>,
    provider: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorLine {
    error: ErrorBody,
}

struct LineError {
    code: &'static str,
    message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> LineError {
    LineError {
        code,
        message: message.into(),
    }
}

fn optional_str<'a>(
    event: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, LineError> {
    match event.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(err("invalid_field", format!("`{key}` must be a string"))),
    }
}

/// Quotes one event line into its output JSON (without the newline).
fn quote_line(
    catalog: &Catalog,
    line: &str,
    now: DateTime<Utc>,
) -> Result<(String, bool), LineError> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| err("invalid_json", e.to_string()))?;
    let Value::Object(event) = value else {
        return Err(err("invalid_json", "an event must be a JSON object"));
    };
    let provider = optional_str(&event, "provider")?
        .map(ProviderId::parse)
        .transpose()
        .map_err(|e| err("invalid_provider", e.to_string()))?;
    let model = optional_str(&event, "model")?
        .map(ModelId::parse)
        .transpose()
        .map_err(|e| err("invalid_model", e.to_string()))?;
    let at = match optional_str(&event, "timestamp")? {
        None => now,
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map_err(|e| {
                err(
                    "invalid_timestamp",
                    format!("`timestamp` is not RFC 3339: {e}"),
                )
            })?
            .with_timezone(&Utc),
    };
    let counts = event_counts(&event).map_err(|e| err(e.code(), e.to_string()))?;
    let outcome = catalog
        .price(provider.as_ref(), model.as_ref(), at, &counts.counts)
        .map_err(|e| err(e.code(), e.to_string()))?;
    let (quote, priced) = match &outcome {
        PriceOutcome::Priced {
            cost_usd,
            version_id,
            provider,
        } => (
            Quote {
                cost_usd: Some(cost_usd.to_string()),
                priced: true,
                estimated: counts.estimated,
                price_version: Some(version_id),
                provider: provider.as_str(),
                reason: None,
            },
            true,
        ),
        PriceOutcome::Unpriced { provider, reason } => (
            Quote {
                cost_usd: None,
                priced: false,
                estimated: counts.estimated,
                price_version: None,
                provider: provider.as_str(),
                reason: Some(reason),
            },
            false,
        ),
    };
    serde_json::to_string(&quote)
        .map(|s| (s, priced))
        .map_err(|e| err("internal", e.to_string()))
}

/// Reads JSON lines of events from `input` and writes exactly one JSON line per input
/// line to `output`, in order: a quote, an unpriced quote, or `{"error": …}` for a bad
/// line (the stream never stops on one). Blank lines are answered with an error too, so
/// that line numbers stay aligned.
pub fn quote_lines(
    catalog: &Catalog,
    input: impl BufRead,
    output: impl Write,
) -> io::Result<QuoteStats> {
    let mut out = io::BufWriter::new(output);
    let mut stats = QuoteStats::default();
    let now = Utc::now();
    for line in input.lines() {
        let line = line?;
        stats.lines += 1;
        match quote_line(catalog, &line, now) {
            Ok((json, priced)) => {
                if priced {
                    stats.priced += 1;
                } else {
                    stats.unpriced += 1;
                }
                out.write_all(json.as_bytes())?;
            }
            Err(e) => {
                stats.errors += 1;
                let body = ErrorLine {
                    error: ErrorBody {
                        code: e.code,
                        message: e.message,
                    },
                };
                serde_json::to_writer(&mut out, &body)?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> (Vec<Value>, QuoteStats) {
        let catalog = Catalog::default_catalog().unwrap();
        let mut out = Vec::new();
        let stats = quote_lines(&catalog, input.as_bytes(), &mut out).unwrap();
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, stats)
    }

    #[test]
    fn each_line_gets_one_answer_in_order() {
        let input = [
            r#"{"provider":"openai","model":"gpt-4o","input_tokens":1000,"output_tokens":500,"timestamp":"2025-06-01T00:00:00Z"}"#,
            r#"not json"#,
            r#"{"model":"gpt-4o-mini","input_chars":4000,"timestamp":"2025-06-01T00:00:00Z"}"#,
            r#"{"provider":"openai","model":"gpt-9","input_tokens":1}"#,
            r#"{"provider":"tavily","searches":3}"#,
            r#"{"model":"gpt-4o","input_tokens":10,"cached_input_tokens":11}"#,
            r#"{"provider":"openai","model":"gpt-4o","timestamp":"2024-06-01T00:00:00Z","input_tokens":1}"#,
        ]
        .join("\n");
        let (lines, stats) = run(&input);
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[0]["cost_usd"], "0.0075");
        assert_eq!(lines[0]["priced"], true);
        assert_eq!(lines[0]["estimated"], false);
        assert_eq!(
            lines[0]["price_version"],
            "openai/gpt-4o@2025-01-01T00:00:00Z"
        );
        assert_eq!(lines[1]["error"]["code"], "invalid_json");
        // 4000 chars = 1000 tokens at $0.15/M, provider found from the model alone
        assert_eq!(lines[2]["cost_usd"], "0.00015");
        assert_eq!(lines[2]["estimated"], true);
        assert_eq!(lines[2]["provider"], "openai");
        assert_eq!(lines[3]["priced"], false);
        assert_eq!(lines[3]["cost_usd"], Value::Null);
        assert_eq!(lines[4]["cost_usd"], "0.024");
        assert_eq!(lines[5]["error"]["code"], "inconsistent_counts");
        assert_eq!(
            lines[6]["priced"], false,
            "before the version's effective_from"
        );
        assert_eq!(
            stats,
            QuoteStats {
                lines: 7,
                priced: 3,
                unpriced: 2,
                errors: 2
            }
        );
    }

    #[test]
    fn bad_fields_are_errors_with_stable_codes() {
        let input = [
            r#"{"provider":"OpenAI","input_tokens":1}"#,
            r#"{"model":"gpt-4o","input_tokens":-5}"#,
            r#"{"model":"gpt-4o","timestamp":"yesterday"}"#,
            r#"{"input_tokens":1}"#,
            r#"{"model":"no-such-model"}"#,
            r#"[]"#,
        ]
        .join("\n");
        let (lines, _) = run(&input);
        let codes: Vec<&str> = lines
            .iter()
            .map(|l| l["error"]["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                "invalid_provider",
                "invalid_count",
                "invalid_timestamp",
                "missing_model",
                "unknown_model",
                "invalid_json"
            ]
        );
        assert!(lines[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input_tokens"));
    }
}
