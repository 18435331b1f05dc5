//! The query parameters of a paged list (`GET /admin/users`, `GET /admin/orgs`,
//! `GET /admin/wallets`, `GET /org/{org_id}/members`): `limit` and `cursor`, and nothing
//! else; and `limit` alone for the lists that take no cursor (the alerts lists).

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;

use super::routes::params;
use super::ApiError;

/// `limit` in `1..=max`, `default` when absent; 400 `invalid_parameter` otherwise.
pub(super) fn limit(raw: Option<&String>, default: usize, max: usize) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("`limit` must be a whole number from 1 to {max}"),
            )),
        },
    }
}

/// The `limit` (as [`limit`] reads it) and `cursor` of a paged list, in that order of
/// checking, after [`params`] (any other parameter is `unknown_parameter`). The cursor
/// (`None`: the first page) is what `cursor` reads from the text; text it refuses is a 400
/// `invalid_parameter`: "`cursor` is not a cursor this route gave".
pub(super) fn page<T, E>(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    default: usize,
    max: usize,
    cursor: impl FnOnce(&str) -> Result<T, E>,
) -> Result<(usize, Option<T>), ApiError> {
    let p = params(query, &["limit", "cursor"])?;
    let limit = limit(p.get("limit"), default, max)?;
    let after = p
        .get("cursor")
        .map(|raw| {
            cursor(raw).map_err(|_| {
                ApiError::bad_request(
                    "invalid_parameter",
                    "`cursor` is not a cursor this route gave",
                )
            })
        })
        .transpose()?;
    Ok((limit, after))
}
