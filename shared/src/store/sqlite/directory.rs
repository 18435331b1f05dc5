//! Tenant-wide reads of the admin view: a tenant's users with their period usage, its
//! latest alerts, one alert by id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::alerts::{alerts, ALERT_COLUMNS};
use super::codec::sql_limit;
use super::codec::{from_json, id, parse_count};
use super::usage::{fired_alerts, period_usage};
use super::SqliteStore;
use crate::domain::{Alert, Subscription, TenantId, UserId};
use crate::store::{DirectoryStore, Page, PeriodPicker, StoreResult, TenantUser, UserUsage};

/// Up to `limit + 1` users of the tenant after `after`, with their subscriptions: the
/// union of subscribers and users with recorded usage (as `billing::list_users`).
fn users_page(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<&UserId>,
    limit: usize,
) -> StoreResult<Vec<(UserId, Option<Subscription>)>> {
    let rows: Vec<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT u.user, s.subscription FROM (
                 SELECT user FROM subscriptions WHERE tenant = ?1
                 UNION SELECT user FROM counters WHERE tenant = ?1 AND recorded_calls > 0
             ) AS u LEFT JOIN subscriptions AS s ON s.tenant = ?1 AND s.user = u.user
             WHERE u.user > ?2 ORDER BY u.user LIMIT ?3",
        )?
        .query_map(
            params![
                tenant.as_str(),
                after.map_or("", UserId::as_str),
                sql_limit(limit).saturating_add(1)
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(user, sub)| {
            Ok((
                id(user, UserId::parse)?,
                sub.map(|j| from_json::<Subscription>(&j)).transpose()?,
            ))
        })
        .collect()
}

fn unread(conn: &Connection, tenant: &TenantId, user: &UserId) -> StoreResult<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM alerts WHERE tenant = ?1 AND user = ?2 AND read = 0")?
        .query_row(params![tenant.as_str(), user.as_str()], |r| r.get(0))?;
    parse_count(n)
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn list_tenant_users(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
        pick: PeriodPicker<'_>,
    ) -> StoreResult<Page<TenantUser>> {
        let (t, a) = (tenant.clone(), after.cloned());
        let mut users = self
            .read(move |c| users_page(c, &t, a.as_ref(), limit))
            .await?;
        let more = users.len() > limit;
        users.truncate(limit);
        // The picker borrows the caller's state, so the periods are chosen here, between
        // the two reads.
        let picked: Vec<(UserId, Option<Subscription>, DateTime<Utc>)> = users
            .into_iter()
            .map(|(u, sub)| {
                let start = pick(sub.as_ref());
                (u, sub, start)
            })
            .collect();
        let t = tenant.clone();
        let items = self
            .read(move |c| {
                picked
                    .into_iter()
                    .map(|(user, subscription, start)| {
                        let usage = period_usage(c, &t, &user, &start)?.limits_only();
                        let fired = fired_alerts(c, &t, &user, &start)?;
                        let unread_alerts = unread(c, &t, &user)?;
                        Ok(TenantUser {
                            user,
                            usage: UserUsage {
                                subscription,
                                period_start: Some(start),
                                usage,
                                fired_alerts: fired,
                                user_budgets: false,
                            },
                            unread_alerts,
                        })
                    })
                    .collect::<StoreResult<Vec<_>>>()
            })
            .await?;
        let next = if more {
            items.last().map(|u| u.user.to_string())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn tenant_alerts(&self, tenant: &TenantId, limit: usize) -> StoreResult<Vec<Alert>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            alerts(
                c,
                &format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant = ?1
                     ORDER BY created_at DESC, id DESC LIMIT ?2"
                ),
                params![tenant.as_str(), sql_limit(limit)],
            )
        })
        .await
    }

    async fn get_alert(&self, tenant: &TenantId, alert_id: &str) -> StoreResult<Option<Alert>> {
        let (tenant, alert_id) = (tenant.clone(), alert_id.to_owned());
        self.read(move |c| {
            Ok(alerts(
                c,
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant = ?1 AND id = ?2"),
                params![tenant.as_str(), alert_id],
            )?
            .pop())
        })
        .await
    }
}
