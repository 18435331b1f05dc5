//! Reading provider usage objects and estimating tokens from characters.
//!
//! Everything ends up in [`UsageCounts`] with LiteLLM's conventions: `input_tokens` is the
//! whole prompt (cache reads and writes included), `output_tokens` the whole completion
//! (reasoning included).

use serde_json::{Map, Value};

use super::{UsageCounts, MAX_COUNT};

/// Characters per token for estimates (rounded up).
pub const CHARS_PER_TOKEN: u64 = 4;

/// Why a usage object or event could not be read. Each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("`{field}` must be a JSON object")]
    NotAnObject { field: String },
    #[error("`usage` is not an OpenAI, Anthropic or Gemini usage object")]
    UnknownShape,
    #[error("`{field}` must not be negative")]
    Negative { field: String },
    #[error("`{field}` must be a whole number")]
    NotAnInteger { field: String },
    #[error("`{field}` exceeds {max}", max = MAX_COUNT)]
    TooLarge { field: String },
    #[error("`{field}` and `usage` both give token counts; give one of them")]
    Conflict { field: String },
}

impl UsageError {
    /// Stable error code for APIs and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownShape => "unknown_usage_shape",
            Self::Conflict { .. } => "conflicting_counts",
            _ => "invalid_count",
        }
    }
}

/// Tokens estimated from a character count: 4 characters per token, rounded up.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(CHARS_PER_TOKEN)
}

/// Reads the count `key` of `obj` (absent or null: `None`), naming it `path` in errors.
pub fn read_count(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u64>, UsageError> {
    let field = || {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                if v > MAX_COUNT {
                    Err(UsageError::TooLarge { field: field() })
                } else {
                    Ok(Some(v))
                }
            } else if n.as_i64().is_some() {
                Err(UsageError::Negative { field: field() })
            } else {
                // A float: only an integral value (e.g. `12.0`) is a count.
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f < 0.0 {
                    Err(UsageError::Negative { field: field() })
                } else if f.fract() != 0.0 || !f.is_finite() {
                    Err(UsageError::NotAnInteger { field: field() })
                } else if f > MAX_COUNT as f64 {
                    Err(UsageError::TooLarge { field: field() })
                } else {
                    Ok(Some(f as u64))
                }
            }
        }
        Some(_) => Err(UsageError::NotAnInteger { field: field() }),
    }
}

fn count(obj: &Map<String, Value>, key: &str, path: &str) -> Result<u64, UsageError> {
    Ok(read_count(obj, key, path)?.unwrap_or(0))
}

fn nested<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, UsageError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(UsageError::NotAnObject {
            field: format!("{path}.{key}"),
        }),
    }
}

fn sum(a: u64, b: u64, field: &str) -> Result<u64, UsageError> {
    a.checked_add(b)
        .filter(|&s| s <= MAX_COUNT)
        .ok_or_else(|| UsageError::TooLarge {
            field: field.to_owned(),
        })
}

/// The provider a usage object's shape belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageShape {
    /// Chat Completions: `prompt_tokens`, `completion_tokens`, details objects.
    OpenAi,
    /// Responses API: `input_tokens` (cache included), `input_tokens_details`, `output_tokens_details`.
    OpenAiResponses,
    /// Messages API: `input_tokens` excluding cache reads and writes.
    Anthropic,
    /// `usageMetadata` (or its inner object).
    Gemini,
}

/// Detects the shape of a usage object from its keys.
pub fn detect_shape(obj: &Map<String, Value>) -> Option<UsageShape> {
    let has = |k: &str| obj.contains_key(k);
    if has("usageMetadata")
        || has("promptTokenCount")
        || has("candidatesTokenCount")
        || has("totalTokenCount")
    {
        Some(UsageShape::Gemini)
    } else if has("prompt_tokens") || has("completion_tokens") {
        Some(UsageShape::OpenAi)
    } else if has("input_tokens_details") || has("output_tokens_details") {
        Some(UsageShape::OpenAiResponses)
    } else if has("input_tokens")
        || has("output_tokens")
        || has("cache_read_input_tokens")
        || has("cache_creation_input_tokens")
    {
        Some(UsageShape::Anthropic)
    } else {
        None
    }
}

/// Reads a provider's usage object (OpenAI, Anthropic or Gemini, detected from its keys)
/// into token counts. Unit counts (requests, searches, …) are left at zero.
pub fn parse_usage(value: &Value) -> Result<UsageCounts, UsageError> {
    const P: &str = "usage";
    let Value::Object(obj) = value else {
        return Err(UsageError::NotAnObject {
            field: P.to_owned(),
        });
    };
    let shape = detect_shape(obj).ok_or(UsageError::UnknownShape)?;
    let mut c = UsageCounts::default();
    match shape {
        UsageShape::OpenAi => {
            c.input_tokens = count(obj, "prompt_tokens", P)?;
            c.output_tokens = count(obj, "completion_tokens", P)?;
            let pd = "usage.prompt_tokens_details";
            if let Some(d) = nested(obj, "prompt_tokens_details", P)? {
                c.cached_input_tokens = count(d, "cached_tokens", pd)?;
            }
            let cd = "usage.completion_tokens_details";
            if let Some(d) = nested(obj, "completion_tokens_details", P)? {
                c.reasoning_tokens = count(d, "reasoning_tokens", cd)?;
            }
        }
        UsageShape::OpenAiResponses => {
            c.input_tokens = count(obj, "input_tokens", P)?;
            c.output_tokens = count(obj, "output_tokens", P)?;
            if let Some(d) = nested(obj, "input_tokens_details", P)? {
                c.cached_input_tokens = count(d, "cached_tokens", "usage.input_tokens_details")?;
            }
            if let Some(d) = nested(obj, "output_tokens_details", P)? {
                c.reasoning_tokens = count(d, "reasoning_tokens", "usage.output_tokens_details")?;
            }
        }
        UsageShape::Anthropic => {
            let uncached = count(obj, "input_tokens", P)?;
            c.cached_input_tokens = count(obj, "cache_read_input_tokens", P)?;
            c.cache_write_tokens = count(obj, "cache_creation_input_tokens", P)?;
            c.input_tokens = sum(
                sum(uncached, c.cached_input_tokens, "usage.input_tokens")?,
                c.cache_write_tokens,
                "usage.input_tokens",
            )?;
            c.output_tokens = count(obj, "output_tokens", P)?;
        }
        UsageShape::Gemini => {
            let (inner, path) = match nested(obj, "usageMetadata", P)? {
                Some(m) => (m, "usage.usageMetadata"),
                None => (obj, P),
            };
            c.input_tokens = count(inner, "promptTokenCount", path)?;
            c.cached_input_tokens = count(inner, "cachedContentTokenCount", path)?;
            let candidates = count(inner, "candidatesTokenCount", path)?;
            c.reasoning_tokens = count(inner, "thoughtsTokenCount", path)?;
            c.output_tokens = sum(
                candidates,
                c.reasoning_tokens,
                &format!("{path}.candidatesTokenCount"),
            )?;
        }
    }
    Ok(c)
}

/// Counts of one event as sent to POST /usage or `meter pricing quote`: explicit count
/// fields, a provider `usage` object, or `input_chars`/`output_chars` estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCounts {
    pub counts: UsageCounts,
    /// Some token count was estimated from characters.
    pub estimated: bool,
}

/// Reads the counts of an event object (the usage fields of `POST /usage`).
///
/// Token counts come from the explicit fields or from `usage` (not both); a missing
/// `input_tokens`/`output_tokens` is estimated from `input_chars`/`output_chars` when
/// given. Unit counts (requests, searches, images, pages) are always explicit.
pub fn event_counts(event: &Map<String, Value>) -> Result<EventCounts, UsageError> {
    const TOKEN_FIELDS: [&str; 5] = [
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ];
    let mut c = match event.get("usage") {
        None | Some(Value::Null) => UsageCounts {
            input_tokens: count(event, "input_tokens", "")?,
            output_tokens: count(event, "output_tokens", "")?,
            cached_input_tokens: count(event, "cached_input_tokens", "")?,
            cache_write_tokens: count(event, "cache_write_tokens", "")?,
            reasoning_tokens: count(event, "reasoning_tokens", "")?,
            ..UsageCounts::default()
        },
        Some(usage) => {
            if let Some(f) = TOKEN_FIELDS
                .iter()
                .find(|f| !matches!(event.get(**f), None | Some(Value::Null)))
            {
                return Err(UsageError::Conflict {
                    field: (*f).to_owned(),
                });
            }
            parse_usage(usage)?
        }
    };
    let has_usage = !matches!(event.get("usage"), None | Some(Value::Null));
    let mut estimated = false;
    if !has_usage {
        if read_count(event, "input_tokens", "")?.is_none() {
            if let Some(chars) = read_count(event, "input_chars", "")? {
                c.input_tokens = estimate_tokens(chars);
                estimated = true;
            }
        }
        if read_count(event, "output_tokens", "")?.is_none() {
            if let Some(chars) = read_count(event, "output_chars", "")? {
                c.output_tokens = estimate_tokens(chars);
                estimated = true;
            }
        }
    }
    c.requests = count(event, "requests", "")?;
    c.searches = count(event, "searches", "")?;
    c.images = count(event, "images", "")?;
    c.pages = count(event, "pages", "")?;
    Ok(EventCounts {
        counts: c,
        estimated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test objects are objects"),
        }
    }

    #[test]
    fn estimate_rounds_up_at_four_chars_per_token() {
        for (chars, tokens) in [
            (0, 0),
            (1, 1),
            (3, 1),
            (4, 1),
            (5, 2),
            (8, 2),
            (9, 3),
            (u64::MAX, u64::MAX / 4 + 1),
        ] {
            assert_eq!(estimate_tokens(chars), tokens, "chars={chars}");
        }
    }

    #[test]
    fn openai_usage_reads_cached_and_reasoning_details() {
        let u = json!({"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 128}});
        let c = parse_usage(&u).unwrap();
        assert_eq!(
            c,
            UsageCounts {
                input_tokens: 1200,
                output_tokens: 300,
                cached_input_tokens: 1024,
                reasoning_tokens: 128,
                ..Default::default()
            }
        );
    }

    #[test]
    fn openai_usage_with_null_details_is_plain() {
        let u = json!({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": null});
        let c = parse_usage(&u).unwrap();
        assert_eq!(
            (c.input_tokens, c.output_tokens, c.cached_input_tokens),
            (10, 5, 0)
        );
    }

    #[test]
    fn openai_responses_usage_keeps_cache_inside_input() {
        let u = json!({"input_tokens": 500, "output_tokens": 90,
            "input_tokens_details": {"cached_tokens": 200}, "output_tokens_details": {"reasoning_tokens": 40}});
        let c = parse_usage(&u).unwrap();
        assert_eq!(
            (
                c.input_tokens,
                c.cached_input_tokens,
                c.output_tokens,
                c.reasoning_tokens
            ),
            (500, 200, 90, 40)
        );
    }

    #[test]
    fn anthropic_input_tokens_exclude_cache_so_they_are_added() {
        let u = json!({"input_tokens": 50, "output_tokens": 400,
            "cache_read_input_tokens": 10000, "cache_creation_input_tokens": 2000});
        let c = parse_usage(&u).unwrap();
        assert_eq!(
            c,
            UsageCounts {
                input_tokens: 12050,
                output_tokens: 400,
                cached_input_tokens: 10000,
                cache_write_tokens: 2000,
                ..Default::default()
            }
        );
    }

    #[test]
    fn gemini_candidates_exclude_thoughts_so_output_adds_them() {
        let inner = json!({"promptTokenCount": 3000, "candidatesTokenCount": 200,
            "cachedContentTokenCount": 1000, "thoughtsTokenCount": 800, "totalTokenCount": 4000});
        let expected = UsageCounts {
            input_tokens: 3000,
            output_tokens: 1000,
            cached_input_tokens: 1000,
            reasoning_tokens: 800,
            ..Default::default()
        };
        assert_eq!(parse_usage(&inner).unwrap(), expected);
        assert_eq!(
            parse_usage(&json!({"usageMetadata": inner})).unwrap(),
            expected
        );
    }

    #[test]
    fn bad_usage_objects_name_the_field() {
        let cases = [
            (
                json!({"prompt_tokens": -1}),
                UsageError::Negative {
                    field: "usage.prompt_tokens".into(),
                },
            ),
            (
                json!({"prompt_tokens": 1.5}),
                UsageError::NotAnInteger {
                    field: "usage.prompt_tokens".into(),
                },
            ),
            (
                json!({"prompt_tokens": "12"}),
                UsageError::NotAnInteger {
                    field: "usage.prompt_tokens".into(),
                },
            ),
            (
                json!({"prompt_tokens": 1_000_000_000_001u64}),
                UsageError::TooLarge {
                    field: "usage.prompt_tokens".into(),
                },
            ),
            (
                json!({"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": -3}}),
                UsageError::Negative {
                    field: "usage.prompt_tokens_details.cached_tokens".into(),
                },
            ),
            (
                json!({"usageMetadata": {"thoughtsTokenCount": 2.5}}),
                UsageError::NotAnInteger {
                    field: "usage.usageMetadata.thoughtsTokenCount".into(),
                },
            ),
            (
                json!({"input_tokens": 1_000_000_000_000u64, "cache_read_input_tokens": 1}),
                UsageError::TooLarge {
                    field: "usage.input_tokens".into(),
                },
            ),
            (json!({"tokens": 5}), UsageError::UnknownShape),
            (
                json!([1, 2]),
                UsageError::NotAnObject {
                    field: "usage".into(),
                },
            ),
        ];
        for (u, err) in cases {
            assert_eq!(parse_usage(&u), Err(err), "{u}");
        }
    }

    #[test]
    fn integral_floats_are_counts() {
        assert_eq!(
            parse_usage(&json!({"prompt_tokens": 12.0}))
                .unwrap()
                .input_tokens,
            12
        );
    }

    #[test]
    fn event_counts_estimate_missing_tokens_from_chars() {
        let e = event_counts(&obj(
            json!({"input_chars": 10, "output_tokens": 7, "output_chars": 400}),
        ))
        .unwrap();
        assert_eq!(
            (e.counts.input_tokens, e.counts.output_tokens, e.estimated),
            (3, 7, true)
        );
        let e = event_counts(&obj(json!({"input_tokens": 10, "searches": 2}))).unwrap();
        assert_eq!(
            (e.counts.input_tokens, e.counts.searches, e.estimated),
            (10, 2, false)
        );
    }

    #[test]
    fn event_counts_read_the_usage_object_and_refuse_double_counts() {
        let e = event_counts(&obj(
            json!({"usage": {"prompt_tokens": 9, "completion_tokens": 1}, "requests": 1}),
        ))
        .unwrap();
        assert_eq!(
            (
                e.counts.input_tokens,
                e.counts.output_tokens,
                e.counts.requests
            ),
            (9, 1, 1)
        );
        assert_eq!(
            event_counts(&obj(
                json!({"usage": {"prompt_tokens": 9}, "input_tokens": 9})
            )),
            Err(UsageError::Conflict {
                field: "input_tokens".into()
            })
        );
        assert_eq!(
            event_counts(&obj(json!({"pages": -2}))),
            Err(UsageError::Negative {
                field: "pages".into()
            })
        );
    }
}
