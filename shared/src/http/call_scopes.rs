//! The scopes named on a call (§10): `org_id` and `team_id` on checks, usage events and
//! quotes, validated like user ids; a team only with its org.

use super::fields::Fields;
use crate::budgets::ScopeError;
use crate::domain::{OrgId, TeamId};

/// The body fields naming a call's org and team.
pub const SCOPE_FIELDS: &[&str] = &["org_id", "team_id"];

/// Reads `org_id` and `team_id` (both optional, the charset and length of user ids):
/// `invalid_id` for a malformed id, `team_without_org` (field `team_id`) for a team
/// named without its org. Errors go to `f`.
pub fn read_scopes(f: &mut Fields<'_>) -> (Option<OrgId>, Option<TeamId>) {
    let org = f.id("org_id", false, OrgId::parse);
    let team = f.id("team_id", false, TeamId::parse);
    if f.raw("team_id").is_some() && f.raw("org_id").is_none() {
        let e = ScopeError::TeamWithoutOrg;
        f.error(e.field(), e.code(), e.to_string());
    }
    (org, team)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: serde_json::Value) -> (Option<OrgId>, Option<TeamId>, Vec<(String, String)>) {
        let mut f = Fields::new(&body, "", &[SCOPE_FIELDS]).unwrap();
        let (org, team) = read_scopes(&mut f);
        let errors = f
            .errors
            .iter()
            .map(|e| (e.field.clone(), e.code.to_string()))
            .collect();
        (org, team, errors)
    }

    #[test]
    fn scopes_are_optional_and_a_team_needs_its_org() {
        assert_eq!(read(json!({})), (None, None, vec![]));
        let (org, team, errors) = read(json!({"org_id": "acme", "team_id": "search"}));
        assert_eq!(org.unwrap().as_str(), "acme");
        assert_eq!(team.unwrap().as_str(), "search");
        assert!(errors.is_empty());
        let (org, _, errors) = read(json!({"org_id": "acme"}));
        assert!(org.is_some() && errors.is_empty());
        let (_, _, errors) = read(json!({"team_id": "search"}));
        assert_eq!(errors, vec![("team_id".into(), "team_without_org".into())]);
    }

    #[test]
    fn malformed_scope_ids_are_refused() {
        for bad in [
            json!(""),
            json!("a b"),
            json!("x".repeat(129)),
            json!(7),
            json!("a#b"),
        ] {
            let (_, _, errors) = read(json!({"org_id": bad.clone()}));
            assert_eq!(errors.len(), 1, "org_id {bad}");
            assert_eq!(errors[0].0, "org_id");
            let (_, _, errors) = read(json!({"org_id": "acme", "team_id": bad.clone()}));
            assert_eq!(errors.len(), 1, "team_id {bad}");
            assert_eq!(errors[0].0, "team_id");
        }
    }
}
