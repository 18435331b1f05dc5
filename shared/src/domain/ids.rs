//! Validated newtypes for every identifier that crosses the boundary.
//!
//! After `parse`, the inside of the system never re-checks an id. Ids are at most 128
//! characters of a safe charset that never contains `#` (the DynamoDB key separator),
//! whitespace or control characters.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest id accepted anywhere.
pub const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} contains a character outside {allowed}")]
    BadChar {
        kind: &'static str,
        allowed: &'static str,
    },
}

fn check(
    kind: &'static str,
    s: &str,
    max: usize,
    allowed: &'static str,
    ok: fn(char) -> bool,
) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.chars().count() > max {
        return Err(IdError::TooLong { kind, max });
    }
    if !s.chars().all(ok) {
        return Err(IdError::BadChar { kind, allowed });
    }
    Ok(())
}

fn general_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '/' | '+' | '=')
}

fn provider_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $max:expr, $allowed:expr, $ok:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check($kind, &s, $max, $allowed, $ok)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

const GENERAL: &str = "letters, digits and - _ . : @ / + =";

id_type!(
    /// A tenant: one customer of meter, owning plans, keys and users.
    TenantId, "tenant_id", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// An end user of a tenant's application.
    UserId, "user_id", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// An organisation named on a call: meter keeps no membership list, a call
    /// belongs to the org it names.
    OrgId, "org_id", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// A team of an organisation; team ids are unique within their org only.
    TeamId, "team_id", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// A budget's id within a tenant, chosen by the admin (`PUT /budgets/{budget_id}`).
    BudgetId, "budget_id", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// One grant of prepaid credit in a wallet, chosen by the client (idempotency key of
    /// the grant's PUT).
    GrantId, "grant_id", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// The client's idempotency key for one usage event.
    EventId, "event_id", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// A model id as the provider or LiteLLM names it (`gpt-4o`, `gemini/gemini-2.5-pro`).
    ModelId, "model", MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// A plan's name within a tenant (`free`, `pro`, `team-2026`).
    PlanName, "plan", 64, GENERAL, general_char
);
id_type!(
    /// A price version's id (a storage key), conventionally `provider/model@effective_from`.
    PriceVersionId, "id", 2 * MAX_ID_LEN, GENERAL, general_char
);
id_type!(
    /// A provider id: an open set of lowercase ids (`gemini`, `openai`, `vertex_ai-language-models`).
    ProviderId, "provider", 64, "lowercase letters, digits and - _ .", provider_char
);

impl ProviderId {
    /// The providers of the default catalog; any other valid id may be added as data.
    pub const KNOWN: [&'static str; 9] = [
        "gemini",
        "openai",
        "anthropic",
        "mistral",
        "tavily",
        "serper",
        "metaphor",
        "firecrawl",
        "stability",
    ];

    /// Whether this is one of the nine providers the default plans and catalog name.
    pub fn is_known(&self) -> bool {
        Self::KNOWN.contains(&self.0.as_str())
    }
}

impl PlanName {
    /// The plan every user without a subscription is on.
    pub fn free() -> Self {
        Self("free".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_safe_charset_and_reject_the_rest() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(ModelId::parse("gemini/gemini-2.5-pro").is_ok());
        assert!(ModelId::parse("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0").is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::Empty { kind: "user_id" }));
        assert!(matches!(UserId::parse("a#b"), Err(IdError::BadChar { .. })));
        assert!(matches!(UserId::parse("a b"), Err(IdError::BadChar { .. })));
        assert!(matches!(UserId::parse("é"), Err(IdError::BadChar { .. })));
        assert!(UserId::parse("x".repeat(128)).is_ok());
        assert!(matches!(
            UserId::parse("x".repeat(129)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn org_team_budget_and_grant_ids_share_the_user_charset() {
        for ok in ["acme", "acme.eu/team-1", "x".repeat(128).as_str()] {
            assert!(OrgId::parse(ok).is_ok(), "{ok}");
            assert!(TeamId::parse(ok).is_ok(), "{ok}");
            assert!(BudgetId::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(OrgId::parse(""), Err(IdError::Empty { kind: "org_id" }));
        assert!(matches!(
            TeamId::parse("a#b"),
            Err(IdError::BadChar {
                kind: "team_id",
                ..
            })
        ));
        assert!(matches!(
            BudgetId::parse("x".repeat(129)),
            Err(IdError::TooLong {
                kind: "budget_id",
                max: 128
            })
        ));
        assert!(GrantId::parse("promo-2025/spring:1").is_ok());
        assert_eq!(GrantId::parse(""), Err(IdError::Empty { kind: "grant_id" }));
        assert!(matches!(
            GrantId::parse("g".repeat(129)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn provider_ids_are_lowercase() {
        assert!(ProviderId::parse("vertex_ai-language-models").is_ok());
        assert!(ProviderId::parse("OpenAI").is_err());
        assert!(ProviderId::parse("gemini").unwrap().is_known());
        assert!(!ProviderId::parse("xai").unwrap().is_known());
    }

    #[test]
    fn ids_deserialize_through_parse() {
        let ok: UserId = serde_json::from_str("\"u-1\"").unwrap();
        assert_eq!(ok.as_str(), "u-1");
        assert!(serde_json::from_str::<UserId>("\"u#1\"").is_err());
    }
}
