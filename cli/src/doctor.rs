//! `meter doctor`: checks that a store is ready to serve, one line per check, and says how
//! to fix what is not. Read-only: it never creates, migrates or repairs anything (the SQLite
//! file is inspected through a read-only connection before the store is opened, and the
//! store is opened only when its schema is already current) — except, when asked with
//! `--upgrade-keys`, the one-time upgrade of a DynamoDB table's API key items written
//! before key ids (SQLite files get it as a schema migration).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{
    IndexStatus, KeyType, ProjectionType, TableDescription, TableStatus, TimeToLiveDescription,
    TimeToLiveStatus,
};
use chrono::{DateTime, Utc};
use clap::Args;
use meter_core::domain::TenantId;
use meter_core::store::dynamo::{keys, DynamoStore};
use meter_core::store::sqlite::{current_schema_version, SqliteStore};
use meter_core::store::Store;

/// The date of this source: a system clock before it is certainly wrong.
const SOURCE_DATE: &str = "2026-11-28T00:00:00Z";
/// How far the clock may be from a server's before it is a problem (AWS rejects requests
/// signed more than 5 minutes off).
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

#[derive(Args)]
pub struct DoctorArgs {
    /// Check this SQLite database file.
    #[arg(long, conflicts_with = "table", required_unless_present = "table")]
    pub db: Option<PathBuf>,
    /// Check this DynamoDB table (configured from the usual AWS environment).
    #[arg(long)]
    pub table: Option<String>,
    /// Check that this SNS topic exists (set in AWS; unset: alerts are only stored and logged).
    #[arg(long, env = "ALERT_TOPIC_ARN")]
    pub alert_topic_arn: Option<String>,
    /// Once, after upgrading a DynamoDB deployment from a build before key ids: rewrite the
    /// API key items that still hold the first 10 characters of their key, and list them
    /// by id under their tenant (a Scan of the table; idempotent). The only write doctor
    /// makes.
    #[arg(long, requires = "table")]
    pub upgrade_keys: bool,
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Skipped,
    Problem,
}

/// One check: its name, what it found and, for a problem, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn skipped(name: &'static str, why: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Skipped,
            detail: why.into(),
            fix: None,
        }
    }

    fn problem(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Problem => "PROBLEM",
        };
        write!(f, "{status:<8} {:<8} {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " -- fix: {fix}")?;
        }
        Ok(())
    }
}

/// Runs every check, prints one line each, and exits with status 1 when any found a problem.
pub async fn run(args: DoctorArgs) -> Result<()> {
    let mut checks = match (&args.table, &args.db) {
        (Some(table), _) => dynamo_checks(table, args.upgrade_keys).await,
        (None, Some(path)) => sqlite_checks(path).await,
        (None, None) => bail!("give --db PATH or --table NAME"),
    };
    checks.push(topic_check(args.alert_topic_arn.as_deref().filter(|a| !a.is_empty())).await);
    for check in &checks {
        println!("{check}");
    }
    let problems = checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    if problems > 0 {
        // A finding, not a failure of the tool: no error trace, just the status.
        eprintln!("meter doctor: {problems} check(s) found a problem");
        std::process::exit(1);
    }
    Ok(())
}

// ------------------------------------------------------------------------------- SQLite

async fn sqlite_checks(path: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from);
    match inspect_sqlite(path) {
        Err(problem) => {
            checks.push(problem);
            checks.push(Check::skipped("schema", "the file cannot be read"));
            checks.push(Check::skipped("data", "the file cannot be read"));
        }
        Ok(version) => {
            let schema = schema_check(version, current_schema_version());
            let current = schema.status == Status::Ok;
            checks.push(Check::ok(
                "file",
                format!(
                    "{} opens read-only as a SQLite database and passes quick_check",
                    path.display()
                ),
            ));
            checks.push(schema);
            if current {
                match SqliteStore::open(path) {
                    Ok(store) => {
                        let flag = format!("--db {}", path.display());
                        checks.extend(data_checks(&store, &flag).await);
                    }
                    Err(e) => checks.push(Check::problem(
                        "data",
                        format!("the store does not open: {e}"),
                        "check the file's permissions and that no other program locks it",
                    )),
                }
            } else {
                checks.push(Check::skipped("data", "the schema is not this build's"));
            }
        }
    }
    let floors: Vec<(String, DateTime<Utc>)> = mtime
        .map(|t| ("the database file's modification time".to_owned(), t))
        .into_iter()
        .collect();
    checks.push(clock_check(Utc::now(), &floors, None));
    checks
}

/// Opens `path` read-only (never creating it) and returns its schema version; a problem
/// line when the file is missing, not a database, or fails `PRAGMA quick_check`.
fn inspect_sqlite(path: &Path) -> Result<i64, Check> {
    let fresh = format!(
        "or start `meter serve --db {}` once to create and bootstrap a new store",
        path.display()
    );
    if !path.exists() {
        return Err(Check::problem(
            "file",
            format!("{} does not exist", path.display()),
            format!("check --db (the default of `meter serve` is ./meter.db), {fresh}"),
        ));
    }
    if !path.is_file() {
        return Err(Check::problem(
            "file",
            format!("{} is not a file", path.display()),
            "point --db at the database file",
        ));
    }
    let unreadable = |e: rusqlite::Error| {
        Check::problem(
            "file",
            format!("{} is not a readable SQLite database: {e}", path.display()),
            format!(
                "stop meter and restore the file (with its -wal file) from a backup, \
                 or move it away {fresh}"
            ),
        )
    };
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(unreadable)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(unreadable)?;
    if verdict != "ok" {
        return Err(Check::problem(
            "file",
            format!("{} is damaged: quick_check says {verdict}", path.display()),
            format!("stop meter and restore the file from a backup, or move it away {fresh}"),
        ));
    }
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(unreadable)
}

fn schema_check(found: i64, current: i64) -> Check {
    use std::cmp::Ordering;
    match found.cmp(&current) {
        Ordering::Equal => Check::ok("schema", format!("version {found}, this build's")),
        Ordering::Less => Check::problem(
            "schema",
            format!("version {found}, older than this build's {current}"),
            "back up the file, then run `meter serve --db FILE` (or any meter command with \
             --db FILE) once: opening the store applies the missing migrations",
        ),
        Ordering::Greater => Check::problem(
            "schema",
            format!("version {found}, written by a newer meter (this build knows {current})"),
            "use that newer meter build with this file; an older build refuses it",
        ),
    }
}

// ----------------------------------------------------------------------------- DynamoDB

/// Remembers the `Date` header of the last response it saw, to compare the clocks.
#[derive(Debug, Clone, Default)]
struct DateProbe(Arc<Mutex<Option<String>>>);

impl DateProbe {
    fn date(&self) -> Option<DateTime<Utc>> {
        let text = self.0.lock().ok()?.clone()?;
        DateTime::parse_from_rfc2822(&text)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

impl Intercept for DateProbe {
    fn name(&self) -> &'static str {
        "DateProbe"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            if let Ok(mut slot) = self.0.lock() {
                *slot = Some(date.to_owned());
            }
        }
        Ok(())
    }
}

async fn dynamo_checks(table: &str, upgrade_keys: bool) -> Vec<Check> {
    let client = meter_core::config::dynamo_client().await;
    let probe = DateProbe::default();
    let described = client
        .describe_table()
        .table_name(table)
        .customize()
        .interceptor(probe.clone())
        .send()
        .await;
    let mut checks = Vec::new();
    let description = match described {
        Ok(out) => out.table,
        Err(e) => {
            let missing = e
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            checks.push(if missing {
                Check::problem(
                    "table",
                    format!("table {table} does not exist in this account and region"),
                    format!(
                        "deploy the stack (docs/deploy.md) or run `meter table create --table \
                         {table}`; check AWS_REGION, the profile and --table"
                    ),
                )
            } else {
                Check::problem(
                    "table",
                    format!(
                        "DescribeTable {table} failed: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    ),
                    "check the credentials, region, network and the dynamodb:DescribeTable \
                     permission",
                )
            });
            None
        }
    };
    match description {
        None => {
            for name in ["keys", "indexes", "ttl", "data"] {
                checks.push(Check::skipped(name, "the table cannot be described"));
            }
            if upgrade_keys {
                checks.push(Check::skipped("api-keys", "the table cannot be described"));
            }
        }
        Some(description) => {
            checks.push(status_check(table, &description));
            checks.push(key_check(&description));
            checks.push(index_check(&description));
            let ttl = client
                .describe_time_to_live()
                .table_name(table)
                .send()
                .await;
            checks.push(match ttl {
                Ok(out) => ttl_check(table, out.time_to_live_description.as_ref()),
                Err(e) => Check::problem(
                    "ttl",
                    format!(
                        "DescribeTimeToLive failed: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    ),
                    "allow dynamodb:DescribeTimeToLive to whoever runs meter doctor",
                ),
            });
            let store = DynamoStore::new(client.clone(), table);
            checks.extend(data_checks(&store, &format!("--table {table}")).await);
            if upgrade_keys {
                checks.push(upgrade_keys_check(&store).await);
            }
        }
    }
    let server = probe
        .date()
        .map(|d| ("the DynamoDB endpoint's Date header".to_owned(), d));
    checks.push(clock_check(Utc::now(), &[], server));
    checks
}

/// Runs the one-time upgrade of API key items (`--upgrade-keys`).
async fn upgrade_keys_check(store: &DynamoStore) -> Check {
    match store.upgrade_api_keys().await {
        Ok(done) => Check::ok(
            "api-keys",
            format!(
                "{} key item(s) held a piece of their key: {} rewritten and listed by id                  (the others were revoked meanwhile)",
                done.found, done.upgraded
            ),
        ),
        Err(e) => Check::problem(
            "api-keys",
            format!("upgrading the key items failed: {e}"),
            "allow dynamodb:Scan, dynamodb:UpdateItem and dynamodb:PutItem to whoever runs              it, then run it again (it is idempotent)",
        ),
    }
}

fn status_check(table: &str, t: &TableDescription) -> Check {
    match &t.table_status {
        Some(TableStatus::Active) => Check::ok("table", format!("{table} exists and is ACTIVE")),
        other => Check::problem(
            "table",
            format!(
                "{table} is {}",
                other.as_ref().map_or("of unknown status", |s| s.as_str())
            ),
            "wait until it is ACTIVE (a new or updating table takes minutes); a table being \
             deleted must be created again",
        ),
    }
}

fn key_of(schema: &[aws_sdk_dynamodb::types::KeySchemaElement]) -> Vec<(String, String)> {
    schema
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect()
}

fn expected_key(pk: &str, sk: &str) -> Vec<(String, String)> {
    vec![
        (pk.to_owned(), KeyType::Hash.as_str().to_owned()),
        (sk.to_owned(), KeyType::Range.as_str().to_owned()),
    ]
}

const RECREATE: &str = "the table was not made by template.yaml or `meter table create`: \
                        create a new table with one of them (docs/dynamodb.md) and copy the \
                        items over";

fn key_check(t: &TableDescription) -> Check {
    let found = key_of(t.key_schema());
    let want = expected_key(keys::PK, keys::SK);
    if found == want {
        Check::ok("keys", format!("{} (HASH), {} (RANGE)", keys::PK, keys::SK))
    } else {
        Check::problem(
            "keys",
            format!("key schema is {found:?}, not {want:?}"),
            RECREATE,
        )
    }
}

/// The GSIs `create_table` makes: name, keys, projection and its non-key attributes.
const INDEXES: [(&str, &str, &str, ProjectionType, &[&str]); 4] = [
    (
        keys::HOLDS_INDEX,
        keys::HOLDS_PK,
        keys::HOLDS_SK,
        ProjectionType::KeysOnly,
        &[],
    ),
    (
        keys::USER_INDEX,
        keys::USER_PK,
        keys::USER_SK,
        ProjectionType::All,
        &[],
    ),
    (
        keys::OUTBOX_INDEX,
        keys::OUTBOX_PK,
        keys::OUTBOX_SK,
        ProjectionType::All,
        &[],
    ),
    (
        keys::SUBS_INDEX,
        keys::SUBS_PK,
        keys::SUBS_SK,
        ProjectionType::Include,
        &[keys::SUB],
    ),
];

fn index_check(t: &TableDescription) -> Check {
    let mut wrong = Vec::new();
    let mut building = Vec::new();
    for (name, pk, sk, projection, non_key) in INDEXES {
        let Some(gsi) = t
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(name))
        else {
            wrong.push(format!("{name} is missing"));
            continue;
        };
        if key_of(gsi.key_schema()) != expected_key(pk, sk) {
            wrong.push(format!("{name} is not keyed on {pk}, {sk}"));
        }
        let found = gsi.projection();
        let mut attrs: Vec<&str> = found
            .map(|p| p.non_key_attributes().iter().map(String::as_str).collect())
            .unwrap_or_default();
        attrs.sort_unstable();
        if found.and_then(|p| p.projection_type()) != Some(&projection) || attrs != non_key {
            wrong.push(format!(
                "{name} does not project {}{}",
                projection.as_str(),
                if non_key.is_empty() {
                    String::new()
                } else {
                    format!(" {non_key:?}")
                }
            ));
        }
        if gsi
            .index_status()
            .is_some_and(|s| *s != IndexStatus::Active)
        {
            building.push(name);
        }
    }
    if !wrong.is_empty() {
        Check::problem("indexes", wrong.join("; "), RECREATE)
    } else if !building.is_empty() {
        Check::problem(
            "indexes",
            format!("not ACTIVE yet: {}", building.join(", ")),
            "wait until DynamoDB has built them (describe-table shows IndexStatus)",
        )
    } else {
        let names: Vec<&str> = INDEXES.iter().map(|i| i.0).collect();
        Check::ok(
            "indexes",
            format!("{} as create_table makes them", names.join(", ")),
        )
    }
}

fn ttl_check(table: &str, ttl: Option<&TimeToLiveDescription>) -> Check {
    let fix = format!(
        "run `meter table create --table {table}` (idempotent; it enables TTL on an existing \
         table) or `aws dynamodb update-time-to-live --table-name {table} \
         --time-to-live-specification Enabled=true,AttributeName={}`",
        keys::TTL
    );
    let status = ttl.and_then(|d| d.time_to_live_status());
    let attribute = ttl.and_then(|d| d.attribute_name());
    match status {
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            if attribute == Some(keys::TTL) =>
        {
            Check::ok(
                "ttl",
                format!("{} on `{}`", status.map_or("", |s| s.as_str()), keys::TTL),
            )
        }
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => Check::problem(
            "ttl",
            format!(
                "TTL is on `{}`, not `{}`: raw events and reservation tombstones never expire",
                attribute.unwrap_or("?"),
                keys::TTL
            ),
            format!("disable it (wait an hour, DynamoDB's rule), then {fix}"),
        ),
        other => Check::problem(
            "ttl",
            format!(
                "TTL is {} on {table}: raw events and reservation tombstones never expire \
                 (the table grows)",
                other.map_or("DISABLED", |s| s.as_str())
            ),
            fix,
        ),
    }
}

// ------------------------------------------------------------------ both stores: data

/// Tenant `default` has plans and the shared catalog is not empty; `flag` is the store
/// option (`--db FILE` / `--table NAME`) the fixes repeat.
async fn data_checks(store: &dyn Store, flag: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let tenant = TenantId::parse("default");
    checks.push(match tenant {
        Err(e) => Check::problem(
            "plans",
            format!("tenant id `default`: {e}"),
            "a bug: report it",
        ),
        Ok(tenant) => match store.list_plans(&tenant).await {
            Ok(plans) if plans.is_empty() => Check::problem(
                "plans",
                "tenant `default` has no plans",
                format!(
                    "run `meter keys create --tenant default --role admin {flag}` (it creates \
                     the tenant with the default plans; docs/deploy.md) or start `meter serve \
                     {flag}` once; a tenant that exists gets plans by PUT \
                     /api/subscription/plans/{{name}}"
                ),
            ),
            Ok(plans) => {
                let names: Vec<String> = plans.iter().map(|p| p.name.to_string()).collect();
                Check::ok(
                    "plans",
                    format!(
                        "tenant `default` has {} plans: {}",
                        plans.len(),
                        names.join(", ")
                    ),
                )
            }
            Err(e) => Check::problem(
                "plans",
                format!("listing the plans failed: {e}"),
                "check the store's connectivity and permissions",
            ),
        },
    });
    checks.push(match store.list_price_versions(None).await {
        Ok(versions) if versions.is_empty() => Check::problem(
            "catalog",
            "the shared price catalog is empty: every event would be unpriced",
            format!(
                "run `meter pricing import shared/data/default_catalog.json --format native \
                 {flag}` (or a LiteLLM file, docs/pricing.md) or start `meter serve {flag}` once"
            ),
        ),
        Ok(versions) => Check::ok(
            "catalog",
            format!("the shared catalog has {} price versions", versions.len()),
        ),
        Err(e) => Check::problem(
            "catalog",
            format!("listing the shared catalog failed: {e}"),
            "check the store's connectivity and permissions",
        ),
    });
    checks
}

// ------------------------------------------------------------------------------ clock

/// The clock is wrong when it is before this source's date or before any of `floors`
/// (times already written, e.g. a file's modification time), or more than `MAX_SKEW` from
/// a server's `Date`. Without a server to ask it says that the comparison was skipped.
fn clock_check(
    now: DateTime<Utc>,
    floors: &[(String, DateTime<Utc>)],
    server: Option<(String, DateTime<Utc>)>,
) -> Check {
    let fix = "set the system clock and keep it synchronised (NTP: chrony or systemd-timesyncd)";
    let skew = chrono::Duration::from_std(MAX_SKEW).unwrap_or(chrono::Duration::MAX);
    let source_date = DateTime::parse_from_rfc3339(SOURCE_DATE)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    if now < source_date {
        return Check::problem(
            "clock",
            format!("the system clock says {now}, before this build's source date {SOURCE_DATE}"),
            fix,
        );
    }
    for (what, floor) in floors {
        if now + skew < *floor {
            return Check::problem(
                "clock",
                format!("the system clock says {now}, before {what} ({floor})"),
                fix,
            );
        }
    }
    match server {
        Some((what, server_now)) => {
            let off = now - server_now;
            if off.abs() > skew {
                Check::problem(
                    "clock",
                    format!(
                        "the system clock is {} s off {what} ({server_now}); AWS rejects \
                         requests signed more than 5 minutes off, and periods and holds \
                         would close at the wrong time",
                        off.num_seconds()
                    ),
                    fix,
                )
            } else {
                Check::ok(
                    "clock",
                    format!("within {} s of {what}", off.num_seconds().abs()),
                )
            }
        }
        None => Check::ok(
            "clock",
            format!(
                "{} is after this build's source date; no server time to compare it with",
                now.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        ),
    }
}

// ------------------------------------------------------------------------------ topic

async fn topic_check(arn: Option<&str>) -> Check {
    let Some(arn) = arn else {
        return Check::skipped(
            "topic",
            "ALERT_TOPIC_ARN is not set: alerts and invoices are stored and logged only",
        );
    };
    let sns = aws_sdk_sns::Client::new(meter_core::config::aws().await);
    match sns.get_topic_attributes().topic_arn(arn).send().await {
        Ok(_) => Check::ok("topic", format!("{arn} exists")),
        Err(e) => {
            let service = e.as_service_error();
            if service.is_some_and(|e| e.is_not_found_exception()) {
                Check::problem(
                    "topic",
                    format!("{arn} does not exist"),
                    "set ALERT_TOPIC_ARN to the stack's AlertTopicArn output \
                     (`sam list stack-outputs`), or unset it to only store and log alerts",
                )
            } else if service.is_some_and(|e| e.is_authorization_error_exception()) {
                Check::problem(
                    "topic",
                    format!("not allowed to read {arn}"),
                    "allow sns:GetTopicAttributes (and sns:Publish for meter itself) on it",
                )
            } else {
                Check::problem(
                    "topic",
                    format!(
                        "GetTopicAttributes {arn} failed: {}",
                        aws_sdk_sns::error::DisplayErrorContext(&e)
                    ),
                    "check the ARN, the region, the credentials and the network",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_clock_before_the_source_date_is_a_problem() {
        let check = clock_check(at("2020-01-01T00:00:00Z"), &[], None);
        assert_eq!(check.status, Status::Problem);
        assert!(check.detail.contains(SOURCE_DATE), "{check}");
    }

    #[test]
    fn a_clock_behind_a_written_file_is_a_problem_but_a_little_is_tolerated() {
        let file = at("2027-03-01T12:00:00Z");
        let floors = [("the file".to_owned(), file)];
        let behind = clock_check(at("2027-03-01T11:50:00Z"), &floors, None);
        assert_eq!(behind.status, Status::Problem);
        let close = clock_check(at("2027-03-01T11:58:00Z"), &floors, None);
        assert_eq!(close.status, Status::Ok);
    }

    #[test]
    fn a_clock_more_than_five_minutes_off_the_server_is_a_problem() {
        let server = at("2027-03-01T12:00:00Z");
        let fast = clock_check(
            at("2027-03-01T12:06:00Z"),
            &[],
            Some(("the server".to_owned(), server)),
        );
        assert_eq!(fast.status, Status::Problem);
        assert!(fast.detail.contains("360 s off"), "{fast}");
        let fine = clock_check(
            at("2027-03-01T11:57:00Z"),
            &[],
            Some(("the server".to_owned(), server)),
        );
        assert_eq!(fine.status, Status::Ok);
    }

    #[test]
    fn an_older_or_newer_schema_is_a_problem_with_a_fix() {
        assert_eq!(schema_check(3, 3).status, Status::Ok);
        let older = schema_check(2, 3);
        assert_eq!(older.status, Status::Problem);
        assert!(older.fix.unwrap().contains("migrations"));
        let newer = schema_check(4, 3);
        assert_eq!(newer.status, Status::Problem);
        assert!(newer.detail.contains("newer meter"));
    }

    #[test]
    fn ttl_on_another_attribute_or_disabled_is_a_problem() {
        let on = |attr: &str, status| {
            TimeToLiveDescription::builder()
                .attribute_name(attr)
                .time_to_live_status(status)
                .build()
        };
        assert_eq!(
            ttl_check("t", Some(&on("ttl", TimeToLiveStatus::Enabled))).status,
            Status::Ok
        );
        assert_eq!(
            ttl_check("t", Some(&on("expires", TimeToLiveStatus::Enabled))).status,
            Status::Problem
        );
        let disabled = ttl_check("t", Some(&on("ttl", TimeToLiveStatus::Disabled)));
        assert_eq!(disabled.status, Status::Problem);
        assert!(disabled
            .fix
            .unwrap()
            .contains("meter table create --table t"));
        assert_eq!(ttl_check("t", None).status, Status::Problem);
    }

    #[test]
    fn a_problem_line_carries_its_fix() {
        let line = Check::problem("ttl", "off", "turn it on").to_string();
        assert!(line.starts_with("PROBLEM  ttl"), "{line}");
        assert!(line.ends_with("-- fix: turn it on"), "{line}");
    }
}
