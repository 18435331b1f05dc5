//! Reading a JSON object field by field, collecting every problem with a stable code.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::service::FieldError;
use crate::usage::MAX_COUNT;

/// A JSON object being validated. Every accessor records a [`FieldError`] instead of
/// failing, so a client learns about all its mistakes at once.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// `known` lists the accepted field names (in groups); any other field is an error, and
    /// so is `null` for a known one (no field read through `Fields` is nullable: a client
    /// leaves a field out to get its default).
    pub fn new(value: &'a Value, prefix: &str, known: &[&[&str]]) -> Result<Self, FieldError> {
        let obj = value.as_object().ok_or_else(|| {
            FieldError::new(
                prefix.trim_end_matches('.'),
                "invalid_type",
                "must be a JSON object",
            )
        })?;
        let mut errors = Vec::new();
        for (name, v) in obj {
            if !known.iter().any(|group| group.contains(&name.as_str())) {
                let shown: String = name.chars().take(64).collect();
                errors.push(FieldError::new(
                    format!("{prefix}{shown}"),
                    "unknown_field",
                    "is not a field of this request",
                ));
            } else if v.is_null() {
                errors.push(FieldError::new(
                    format!("{prefix}{name}"),
                    "invalid_type",
                    "must not be null; leave the field out instead",
                ));
            }
        }
        Ok(Self {
            obj,
            prefix: prefix.to_owned(),
            errors,
        })
    }

    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn fail(&mut self, name: &str, code: &'static str, message: impl Into<String>) {
        let field = self.name(name);
        self.errors.push(FieldError::new(field, code, message));
    }

    /// The object being read.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.obj
    }

    /// The raw value, `None` when absent or `null`.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    /// One of `choices` (by its JSON name), or a field error `invalid_value`; a missing
    /// field is `missing_field` when `required` (a `null` is already `invalid_type`).
    pub fn choice<T: Copy>(
        &mut self,
        name: &str,
        required: bool,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let required = required && !self.obj.contains_key(name);
        let raw = self.string(name, required, 32)?;
        match choices.iter().find(|(n, _)| *n == raw) {
            Some((_, v)) => Some(*v),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.error(
                    name,
                    "invalid_value",
                    format!("must be one of {}", names.join(", ")),
                );
                None
            }
        }
    }

    pub fn string(&mut self, name: &str, required: bool, max_len: usize) -> Option<&'a str> {
        match self.raw(name) {
            None => {
                if required {
                    self.fail(name, "missing_field", "is required");
                }
                None
            }
            Some(Value::String(s)) if s.chars().count() > max_len => {
                self.fail(
                    name,
                    "too_long",
                    format!("must be at most {max_len} characters"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.fail(name, "invalid_type", "must be a string");
                None
            }
        }
    }

    /// A validated id (`UserId::parse`, …).
    pub fn id<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        required: bool,
        parse: impl Fn(String) -> Result<T, E>,
    ) -> Option<T> {
        let s = self.string(name, required, usize::MAX)?;
        match parse(s.to_owned()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(name, "invalid_id", e.to_string());
                None
            }
        }
    }

    /// A count in `0..=10^12`; absent = `None`.
    pub fn count(&mut self, name: &str) -> Option<u64> {
        self.uint(name, MAX_COUNT)
    }

    /// An unsigned integer in `0..=max` (`max` ≤ 2^53). As in JSON Schema, a number with a
    /// zero fraction (`5.0`) is the integer it equals.
    pub fn uint(&mut self, name: &str, max: u64) -> Option<u64> {
        let v = self.raw(name)?;
        let integral = v.as_f64().filter(|f| v.is_f64() && f.fract() == 0.0);
        match v.as_u64() {
            Some(n) if n <= max => Some(n),
            Some(_) => {
                self.fail(name, "out_of_range", format!("must be at most {max}"));
                None
            }
            None if integral.is_some_and(|f| (0.0..=max as f64).contains(&f)) => {
                integral.map(|f| f as u64)
            }
            None if integral.is_some_and(|f| f > 0.0) => {
                self.fail(name, "out_of_range", format!("must be at most {max}"));
                None
            }
            None if v.as_i64().is_some() || integral.is_some() => {
                self.fail(name, "out_of_range", "must not be negative");
                None
            }
            None if v.is_number() => {
                self.fail(
                    name,
                    "invalid_type",
                    format!("must be a whole number between 0 and {max}"),
                );
                None
            }
            None => {
                self.fail(name, "invalid_type", "must be a number");
                None
            }
        }
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.raw(name)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.fail(name, "invalid_type", "must be true or false");
                None
            }
        }
    }

    /// An RFC 3339 timestamp, converted to UTC.
    pub fn timestamp(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let s = self.string(name, false, 64)?;
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.fail(
                    name,
                    "invalid_timestamp",
                    "must be an RFC 3339 timestamp such as 2025-03-01T12:00:00Z",
                );
                None
            }
        }
    }

    /// A nested object, validated by `read`.
    pub fn object<T>(
        &mut self,
        name: &str,
        known: &[&str],
        read: impl FnOnce(&mut Fields<'a>) -> T,
    ) -> Option<T> {
        let v = self.raw(name)?;
        let prefix = format!("{}{name}.", self.prefix);
        match Fields::new(v, &prefix, &[known]) {
            Ok(mut inner) => {
                let out = read(&mut inner);
                self.errors.append(&mut inner.errors);
                Some(out)
            }
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// Records a problem found by the caller.
    pub fn error(&mut self, name: &str, code: &'static str, message: impl Into<String>) {
        self.fail(name, code, message);
    }
}
