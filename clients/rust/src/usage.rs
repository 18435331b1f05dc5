//! Reading the usage object of a provider's response into meter's token counts.
//!
//! Understood shapes (the response as JSON, or its usage object): OpenAI Chat Completions
//! `usage` (`prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`,
//! `completion_tokens_details.reasoning_tokens`), OpenAI Responses `usage` (`input_tokens`,
//! `output_tokens`, `input_tokens_details.cached_tokens`,
//! `output_tokens_details.reasoning_tokens`), Anthropic Messages `usage` (`input_tokens`
//! without cache reads and writes, `output_tokens`, `cache_read_input_tokens`,
//! `cache_creation_input_tokens`), Gemini `usageMetadata` (camelCase, or snake_case as some
//! SDKs serialise it) and meter's own [`Usage`]. The arithmetic is the server's
//! (shared/src/usage/normalise.rs), so a recorded cost equals the quote of the same object.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::types::Usage;

fn get<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| obj.get(*n).filter(|v| !v.is_null()))
}

fn has(obj: &Map<String, Value>, names: &[&str]) -> bool {
    get(obj, names).is_some()
}

fn count(obj: Option<&Map<String, Value>>, names: &[&str]) -> Result<u64, Error> {
    let Some(v) = obj.and_then(|o| get(o, names)) else {
        return Ok(0);
    };
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    if let Some(f) = v.as_f64() {
        if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 {
            return Ok(f as u64);
        }
    }
    Err(Error::Usage(format!(
        "usage count `{}` is not a non-negative whole number: {v}",
        names[0]
    )))
}

fn nested<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    obj.get(name).and_then(Value::as_object)
}

fn sum(parts: &[u64]) -> Result<u64, Error> {
    parts
        .iter()
        .try_fold(0u64, |a, b| a.checked_add(*b))
        .ok_or_else(|| Error::Usage("usage counts overflow".into()))
}

fn gemini(meta: &Map<String, Value>) -> Result<Usage, Error> {
    let m = Some(meta);
    let thoughts = count(m, &["thoughtsTokenCount", "thoughts_token_count"])?;
    let candidates = count(m, &["candidatesTokenCount", "candidates_token_count"])?;
    Ok(Usage {
        input_tokens: count(m, &["promptTokenCount", "prompt_token_count"])?,
        output_tokens: sum(&[candidates, thoughts])?,
        cached_input_tokens: count(
            m,
            &["cachedContentTokenCount", "cached_content_token_count"],
        )?,
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    })
}

fn usage_object(u: &Map<String, Value>) -> Result<Option<Usage>, Error> {
    let o = Some(u);
    if has(u, &["cached_input_tokens", "cache_write_tokens"]) {
        return Ok(Some(Usage {
            input_tokens: count(o, &["input_tokens"])?,
            output_tokens: count(o, &["output_tokens"])?,
            cached_input_tokens: count(o, &["cached_input_tokens"])?,
            cache_write_tokens: count(o, &["cache_write_tokens"])?,
            reasoning_tokens: count(o, &["reasoning_tokens"])?,
        }));
    }
    if has(
        u,
        &[
            "promptTokenCount",
            "prompt_token_count",
            "candidatesTokenCount",
            "candidates_token_count",
            "totalTokenCount",
            "total_token_count",
        ],
    ) {
        return gemini(u).map(Some);
    }
    if has(u, &["prompt_tokens", "completion_tokens"]) {
        return Ok(Some(Usage {
            input_tokens: count(o, &["prompt_tokens"])?,
            output_tokens: count(o, &["completion_tokens"])?,
            cached_input_tokens: count(nested(u, "prompt_tokens_details"), &["cached_tokens"])?,
            cache_write_tokens: 0,
            reasoning_tokens: count(
                nested(u, "completion_tokens_details"),
                &["reasoning_tokens"],
            )?,
        }));
    }
    if has(u, &["input_tokens_details", "output_tokens_details"]) {
        return Ok(Some(Usage {
            input_tokens: count(o, &["input_tokens"])?,
            output_tokens: count(o, &["output_tokens"])?,
            cached_input_tokens: count(nested(u, "input_tokens_details"), &["cached_tokens"])?,
            cache_write_tokens: 0,
            reasoning_tokens: count(nested(u, "output_tokens_details"), &["reasoning_tokens"])?,
        }));
    }
    if has(
        u,
        &[
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ],
    ) {
        let read = count(o, &["cache_read_input_tokens"])?;
        let write = count(o, &["cache_creation_input_tokens"])?;
        return Ok(Some(Usage {
            input_tokens: sum(&[count(o, &["input_tokens"])?, read, write])?,
            output_tokens: count(o, &["output_tokens"])?,
            cached_input_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        }));
    }
    Ok(None)
}

/// The token counts of a provider response as JSON (or of its usage object); `None` when
/// it carries no usage object of a known shape. A malformed count is [`Error::Usage`].
pub fn read_usage(response: &Value) -> Result<Option<Usage>, Error> {
    let Some(r) = response.as_object() else {
        return Ok(None);
    };
    if let Some(meta) = get(r, &["usageMetadata", "usage_metadata"]).and_then(Value::as_object) {
        return gemini(meta).map(Some);
    }
    if let Some(u) = r.get("usage").and_then(Value::as_object) {
        if let Some(found) = usage_object(u)? {
            return Ok(Some(found));
        }
    }
    usage_object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn u(i: u64, o: u64, c: u64, w: u64, r: u64) -> Usage {
        Usage {
            input_tokens: i,
            output_tokens: o,
            cached_input_tokens: c,
            cache_write_tokens: w,
            reasoning_tokens: r,
        }
    }

    #[test]
    fn every_provider_shape_is_read_as_the_server_reads_it() {
        let chat = json!({"usage": {"prompt_tokens": 1200, "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 200}, "completion_tokens_details": {"reasoning_tokens": 50}}});
        assert_eq!(read_usage(&chat).unwrap(), Some(u(1200, 300, 200, 0, 50)));
        let responses = json!({"object": "response", "usage": {"input_tokens": 900, "output_tokens": 100,
            "input_tokens_details": {"cached_tokens": 300}, "output_tokens_details": {"reasoning_tokens": 20}}});
        assert_eq!(
            read_usage(&responses).unwrap(),
            Some(u(900, 100, 300, 0, 20))
        );
        let anthropic = json!({"type": "message", "usage": {"input_tokens": 100, "output_tokens": 40,
            "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 500}});
        assert_eq!(
            read_usage(&anthropic).unwrap(),
            Some(u(1600, 40, 1000, 500, 0))
        );
        let gemini = json!({"usageMetadata": {"promptTokenCount": 2000, "candidatesTokenCount": 300,
            "cachedContentTokenCount": 500, "thoughtsTokenCount": 100}});
        assert_eq!(
            read_usage(&gemini).unwrap(),
            Some(u(2000, 400, 500, 0, 100))
        );
        let snake = json!({"usage_metadata": {"prompt_token_count": 2000, "candidates_token_count": 300,
            "cached_content_token_count": 500, "thoughts_token_count": 100}});
        assert_eq!(read_usage(&snake).unwrap(), Some(u(2000, 400, 500, 0, 100)));
        let own = serde_json::to_value(u(10, 2, 4, 0, 0)).unwrap();
        assert_eq!(read_usage(&own).unwrap(), Some(u(10, 2, 4, 0, 0)));
    }

    #[test]
    fn no_usage_is_none_and_bad_counts_are_errors() {
        assert_eq!(read_usage(&json!({"text": "hi"})).unwrap(), None);
        assert_eq!(read_usage(&json!("text")).unwrap(), None);
        assert_eq!(read_usage(&json!({"usage": "n/a"})).unwrap(), None);
        for bad in [json!(-1), json!(1.5), json!("12")] {
            assert!(read_usage(&json!({"usage": {"prompt_tokens": bad}})).is_err());
        }
    }
}
