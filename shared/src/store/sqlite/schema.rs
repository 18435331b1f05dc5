//! Connection settings and the versioned schema.
//!
//! The schema version is `PRAGMA user_version`: the number of entries of [`MIGRATIONS`]
//! applied. Opening a file applies the missing ones, each in its own transaction together
//! with its version bump; a file from a newer build (a version past the list) is refused.
//! Migrations are append-only: never edit one that has shipped.
//!
//! Conventions: timestamps are RFC 3339 UTC with a fixed nine fractional digits, so text
//! order is time order and values read back exactly (the `events` table, the largest,
//! holds integer nanoseconds instead: `event_row`); days are `YYYY-MM-DD`; money is the
//! exact `Decimal` text (changed only through the `dec_*` functions); counts are INTEGER.
//! No foreign keys are declared between tables: the port lets callers write records in
//! any order (events of a user without a subscription, keys of a tenant bootstrapped
//! later), so such constraints would only turn valid calls into errors.

use std::time::Duration;

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

/// How long a connection waits for a lock held by another connection or process.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one migration per entry; entry `i` brings the file to version `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
    CREATE TABLE tenants (
        tenant      TEXT NOT NULL PRIMARY KEY,
        created_at  TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE api_keys (
        hash    TEXT NOT NULL PRIMARY KEY,
        tenant  TEXT NOT NULL,
        record  TEXT NOT NULL          -- ApiKeyRecord as JSON
    ) STRICT;
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant);

    CREATE TABLE plans (
        tenant  TEXT NOT NULL,
        name    TEXT NOT NULL,
        plan    TEXT NOT NULL,         -- Plan as JSON
        PRIMARY KEY (tenant, name)
    ) STRICT;

    -- scope '' is the shared catalog (a tenant id is never empty); rowid keeps insertion order.
    CREATE TABLE price_versions (
        scope    TEXT NOT NULL,
        id       TEXT NOT NULL,
        version  TEXT NOT NULL,        -- the price version's JSON
        PRIMARY KEY (scope, id)
    ) STRICT;

    CREATE TABLE subscriptions (
        tenant        TEXT NOT NULL,
        user          TEXT NOT NULL,
        version       INTEGER NOT NULL,
        subscription  TEXT NOT NULL,   -- Subscription as JSON
        PRIMARY KEY (tenant, user)
    ) STRICT;

    CREATE TABLE events (
        tenant        TEXT NOT NULL,
        event_id      TEXT NOT NULL,
        user          TEXT NOT NULL,
        fingerprint   TEXT NOT NULL,
        provider      TEXT NOT NULL,
        period_start  TEXT NOT NULL,
        timestamp     TEXT NOT NULL,
        priced        INTEGER NOT NULL CHECK (priced IN (0, 1)),
        event         TEXT NOT NULL,   -- UsageEvent as JSON (the exact record)
        PRIMARY KEY (tenant, event_id)
    ) STRICT;
    -- a user's events by time (export, erasure, re-pricing).
    CREATE INDEX events_by_user ON events (tenant, user, timestamp);

    CREATE TABLE counters (
        tenant           TEXT NOT NULL,
        user             TEXT NOT NULL,
        period_start     TEXT NOT NULL,
        provider         TEXT NOT NULL,
        recorded_calls   INTEGER NOT NULL DEFAULT 0,
        recorded_tokens  INTEGER NOT NULL DEFAULT 0,
        recorded_cost    TEXT NOT NULL DEFAULT '0',
        held_calls       INTEGER NOT NULL DEFAULT 0 CHECK (held_calls >= 0),
        held_tokens      INTEGER NOT NULL DEFAULT 0 CHECK (held_tokens >= 0),
        held_cost        TEXT NOT NULL DEFAULT '0',
        unpriced         INTEGER NOT NULL DEFAULT 0,
        estimated        INTEGER NOT NULL DEFAULT 0,
        errors           INTEGER NOT NULL DEFAULT 0,
        latency_sum      INTEGER NOT NULL DEFAULT 0,
        latency_count    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, user, period_start, provider)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE daily (
        tenant    TEXT NOT NULL,
        user      TEXT NOT NULL,
        day       TEXT NOT NULL,
        provider  TEXT NOT NULL,
        calls     INTEGER NOT NULL DEFAULT 0,
        tokens    INTEGER NOT NULL DEFAULT 0,
        cost      TEXT NOT NULL DEFAULT '0',
        PRIMARY KEY (tenant, user, day, provider)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE reservations (
        tenant        TEXT NOT NULL,
        id            TEXT NOT NULL,
        user          TEXT NOT NULL,
        provider      TEXT NOT NULL,
        period_start  TEXT NOT NULL,
        held_calls    INTEGER NOT NULL,
        held_tokens   INTEGER NOT NULL,
        held_cost     TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('held', 'settled', 'released', 'expired')),
        created_at    TEXT NOT NULL,
        expires_at    TEXT NOT NULL,
        closed_at     TEXT,
        PRIMARY KEY (tenant, id)
    ) STRICT;
    CREATE INDEX reservations_held_by_expiry ON reservations (expires_at) WHERE status = 'held';

    CREATE TABLE alerts (
        tenant        TEXT NOT NULL,
        id            TEXT NOT NULL,
        user          TEXT NOT NULL,
        period_start  TEXT NOT NULL,
        key           TEXT NOT NULL,
        metric        TEXT,
        threshold     INTEGER,
        severity      TEXT NOT NULL,
        title         TEXT NOT NULL,
        message       TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        read          INTEGER NOT NULL CHECK (read IN (0, 1)),
        published     INTEGER NOT NULL CHECK (published IN (0, 1)),
        PRIMARY KEY (tenant, id),
        UNIQUE (tenant, user, period_start, key)
    ) STRICT;
    CREATE INDEX alerts_by_user ON alerts (tenant, user, created_at, id);
    CREATE INDEX alerts_unread ON alerts (tenant, user) WHERE read = 0;
    CREATE INDEX alerts_unpublished ON alerts (created_at, id) WHERE published = 0;

    CREATE TABLE invoices (
        tenant        TEXT NOT NULL,
        id            TEXT NOT NULL,
        user          TEXT NOT NULL,
        period_start  TEXT NOT NULL,
        invoice       TEXT NOT NULL,   -- Invoice as JSON
        PRIMARY KEY (tenant, id),
        UNIQUE (tenant, user, period_start)
    ) STRICT;
    "#,
    // 2: billing — periods closed into invoices, pending adjustments, the invoice outbox,
    // the unpriced-event index and job cursors.
    r#"
    -- billed_to: end of the user's last invoiced period.
    CREATE TABLE billing (
        tenant     TEXT NOT NULL,
        user       TEXT NOT NULL,
        billed_to  TEXT NOT NULL,
        PRIMARY KEY (tenant, user)
    ) STRICT, WITHOUT ROWID;

    -- Usage added to a period after it was invoiced, not yet billed.
    CREATE TABLE adjustments (
        tenant        TEXT NOT NULL,
        user          TEXT NOT NULL,
        period_start  TEXT NOT NULL,
        events        INTEGER NOT NULL DEFAULT 0,
        cost          TEXT NOT NULL DEFAULT '0',
        PRIMARY KEY (tenant, user, period_start)
    ) STRICT, WITHOUT ROWID;

    ALTER TABLE invoices ADD COLUMN published INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1));
    UPDATE invoices SET published = 1 WHERE json_extract(invoice, '$.published') = 1;
    CREATE INDEX invoices_unpublished ON invoices (period_start, tenant, id) WHERE published = 0;

    CREATE INDEX events_unpriced ON events (tenant, event_id) WHERE priced = 0;

    CREATE TABLE jobs (
        name    TEXT NOT NULL PRIMARY KEY,
        cursor  TEXT NOT NULL
    ) STRICT;
    "#,
    // 3: alerts can be re-armed. An upgrade forgets once-only keys whose usage is back below
    // the threshold: the row stays (it is still listed) with `rearmed = 1`, and only rows
    // with `rearmed = 0` hold the key, so the same key may be stored again. SQLite cannot
    // drop a table constraint, so the table is rebuilt with a partial unique index.
    r#"
    CREATE TABLE alerts_v2 (
        tenant        TEXT NOT NULL,
        id            TEXT NOT NULL,
        user          TEXT NOT NULL,
        period_start  TEXT NOT NULL,
        key           TEXT NOT NULL,
        metric        TEXT,
        threshold     INTEGER,
        severity      TEXT NOT NULL,
        title         TEXT NOT NULL,
        message       TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        read          INTEGER NOT NULL CHECK (read IN (0, 1)),
        published     INTEGER NOT NULL CHECK (published IN (0, 1)),
        rearmed       INTEGER NOT NULL DEFAULT 0 CHECK (rearmed IN (0, 1)),
        PRIMARY KEY (tenant, id)
    ) STRICT;
    INSERT INTO alerts_v2 (tenant, id, user, period_start, key, metric, threshold, severity,
                           title, message, created_at, read, published, rearmed)
        SELECT tenant, id, user, period_start, key, metric, threshold, severity,
               title, message, created_at, read, published, 0 FROM alerts;
    DROP TABLE alerts;
    ALTER TABLE alerts_v2 RENAME TO alerts;
    CREATE UNIQUE INDEX alerts_once ON alerts (tenant, user, period_start, key) WHERE rearmed = 0;
    CREATE INDEX alerts_by_user ON alerts (tenant, user, created_at, id);
    CREATE INDEX alerts_unread ON alerts (tenant, user) WHERE read = 0;
    CREATE INDEX alerts_unpublished ON alerts (created_at, id) WHERE published = 0;
    "#,
    // 4: a user's reservations by index. Export and erasure looked them up by tenant alone,
    // reading every reservation of the tenant (found by the 10-minute soak's audit).
    r#"
    CREATE INDEX reservations_by_user ON reservations (tenant, user, created_at, id);
    "#,
    // 5: the web dashboard (docs/web.md): each tenant's token signing keys (they hold the
    // secrets), and a tenant's alerts by time for the admin view.
    r#"
    CREATE TABLE token_keys (
        tenant   TEXT NOT NULL PRIMARY KEY,
        version  INTEGER NOT NULL,
        keys     TEXT NOT NULL         -- TokenKeys' stored form
    ) STRICT;
    CREATE INDEX alerts_by_tenant ON alerts (tenant, created_at, id);
    "#,
    // 6: publishing claims on the outbox. Overlapping aggregation passes (several
    // `meter serve` processes) published the same invoice or alert twice; a publisher now
    // claims an unpublished record until `claimed_until` first.
    r#"
    ALTER TABLE alerts ADD COLUMN claimed_until TEXT;
    ALTER TABLE invoices ADD COLUMN claimed_until TEXT;
    "#,
    // 7: an erased user's invoices are kept under the pseudonym however many times the
    // user is erased. Pseudonymising a second invoice of a period the pseudonym already
    // had broke UNIQUE (tenant, user, period_start), and every later erasure answered 503.
    // One invoice per (tenant, user, period) now holds for the users' own invoices
    // (`pseudonymised = 0`): the table is rebuilt with a partial unique index.
    r#"
    CREATE TABLE invoices_v2 (
        tenant         TEXT NOT NULL,
        id             TEXT NOT NULL,
        user           TEXT NOT NULL,
        period_start   TEXT NOT NULL,
        invoice        TEXT NOT NULL,   -- Invoice as JSON
        published      INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1)),
        claimed_until  TEXT,
        pseudonymised  INTEGER NOT NULL DEFAULT 0 CHECK (pseudonymised IN (0, 1)),
        PRIMARY KEY (tenant, id)
    ) STRICT;
    INSERT INTO invoices_v2 (tenant, id, user, period_start, invoice, published, claimed_until)
        SELECT tenant, id, user, period_start, invoice, published, claimed_until FROM invoices;
    DROP TABLE invoices;
    ALTER TABLE invoices_v2 RENAME TO invoices;
    CREATE UNIQUE INDEX invoices_once ON invoices (tenant, user, period_start) WHERE pseudonymised = 0;
    CREATE INDEX invoices_by_user ON invoices (tenant, user, period_start);
    CREATE INDEX invoices_unpublished ON invoices (period_start, tenant, id) WHERE published = 0;
    "#,
    // 8: no piece of an API key is stored. Records kept `prefix`, the key's first 10
    // characters (half of a 20-character bootstrap key); a key is now named by its id,
    // derived from the hash (`auth::key_id`): listed by the tenant index, revoked by a
    // range of the hash. `secure_delete` zeroes the freed bytes of the rewritten rows, so
    // the old text does not linger in the file's free space.
    r#"
    PRAGMA secure_delete = ON;
    UPDATE api_keys SET record = json_remove(record, '$.prefix')
        WHERE json_type(record, '$.prefix') IS NOT NULL;
    PRAGMA secure_delete = OFF;
    "#,
    // 9: budgets (issue 18): one row per (tenant, budget id), listed by scope key.
    r#"
    CREATE TABLE budgets (
        tenant   TEXT NOT NULL,
        id       TEXT NOT NULL,
        scope    TEXT NOT NULL,      -- Scope::key(): user#…, org#…, team#…#…
        version  INTEGER NOT NULL CHECK (version >= 1),
        budget   TEXT NOT NULL,      -- Budget as JSON (limits as exact decimal strings)
        PRIMARY KEY (tenant, id)
    ) STRICT;
    CREATE INDEX budgets_by_scope ON budgets (tenant, scope, id);
    "#,
    // 10: prepaid-credit wallets (issue 19): grants per (tenant, wallet, grant id) and
    // one settings row per wallet; the wallet key is `user/<id>` or `org/<id>`.
    r#"
    CREATE TABLE wallet_grants (
        tenant   TEXT NOT NULL,
        wallet   TEXT NOT NULL,
        grant_id TEXT NOT NULL,
        record   TEXT NOT NULL,      -- Grant as JSON (amounts as exact decimal strings)
        PRIMARY KEY (tenant, wallet, grant_id)
    ) STRICT;
    CREATE TABLE wallet_settings (
        tenant          TEXT NOT NULL,
        wallet          TEXT NOT NULL,
        low_balance_usd TEXT NOT NULL, -- exact decimal string
        PRIMARY KEY (tenant, wallet)
    ) STRICT;
    "#,
    // 11: budget counters (issue 18): one row per (tenant, counter key, provider); a new
    // window is a new key, rows are pruned a day after their window's end.
    r#"
    CREATE TABLE budget_counters (
        tenant     TEXT NOT NULL,
        counter    TEXT NOT NULL,    -- budgets::CounterKey::key()
        provider   TEXT NOT NULL,
        window_end TEXT NOT NULL,
        calls      INTEGER NOT NULL CHECK (calls >= 0),
        tokens     INTEGER NOT NULL CHECK (tokens >= 0),
        cost       TEXT NOT NULL,    -- exact decimal
        PRIMARY KEY (tenant, counter, provider)
    ) STRICT;
    CREATE INDEX budget_counters_by_end ON budget_counters (window_end);
    "#,
    // 12: reservations hold on budget counters (issue 18): a counter's held usage beside
    // its counted usage, and each reservation's budget holds (JSON list of BudgetHold),
    // returned when it closes.
    r#"
    ALTER TABLE budget_counters ADD COLUMN held_calls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE budget_counters ADD COLUMN held_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE budget_counters ADD COLUMN held_cost TEXT NOT NULL DEFAULT '0';
    ALTER TABLE reservations ADD COLUMN budget_holds TEXT;
    "#,
    // 13: org subscriptions (issue 18): one row per (tenant, org); their invoices go to
    // `invoices` under the subscriber key `org#<org_id>`.
    r#"
    CREATE TABLE org_subscriptions (
        tenant   TEXT NOT NULL,
        org_id   TEXT NOT NULL,
        version  INTEGER NOT NULL,
        sub      TEXT NOT NULL,      -- Subscription as JSON (its `user` is the org id)
        PRIMARY KEY (tenant, org_id)
    ) STRICT;
    "#,
    // 14: who acted within an org in one of its periods (issue 18, org members read); rows
    // are pruned a day after their period's end.
    r#"
    CREATE TABLE org_members (
        tenant       TEXT NOT NULL,
        org_id       TEXT NOT NULL,
        period_start TEXT NOT NULL,
        kind         TEXT NOT NULL CHECK (kind IN ('user', 'team')),
        member_id    TEXT NOT NULL,
        period_end   TEXT NOT NULL,
        PRIMARY KEY (tenant, org_id, period_start, kind, member_id)
    ) STRICT;
    CREATE INDEX org_members_by_end ON org_members (period_end);
    "#,
    // 15: prepaid plans (issue 19): the credit each open reservation holds on its user's
    // wallet (deleted with the reservation's close), each wallet's overdraft and alarms,
    // and each event's draws from grants (written with the event).
    r#"
    CREATE TABLE wallet_holds (
        tenant         TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        wallet         TEXT NOT NULL,
        amount         TEXT NOT NULL,  -- exact decimal
        PRIMARY KEY (tenant, reservation_id)
    ) STRICT;
    CREATE INDEX wallet_holds_by_wallet ON wallet_holds (tenant, wallet);
    CREATE TABLE wallet_balances (
        tenant         TEXT NOT NULL,
        wallet         TEXT NOT NULL,
        overdrawn_usd  TEXT NOT NULL,      -- exact decimal
        low_armed      INTEGER,            -- the alarms (credits::WalletAlarms); NULL: never observed
        depleted_armed INTEGER,
        alarm_seq      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, wallet)
    ) STRICT;
    CREATE TABLE wallet_draws (
        tenant   TEXT NOT NULL,
        event_id TEXT NOT NULL,
        wallet   TEXT NOT NULL,
        at       TEXT NOT NULL,        -- the event's timestamp
        cost     TEXT NOT NULL,        -- exact decimal
        draws    TEXT NOT NULL,        -- credits::Draws as JSON
        PRIMARY KEY (tenant, event_id)
    ) STRICT;
    CREATE INDEX wallet_draws_by_wallet ON wallet_draws (tenant, wallet, at);
    "#,
    // 16: hard limits that denied a scope at 100 % (issue 18, `alert.resolved`): one row per
    // (tenant, key) until an aggregation pass resolves it (deleted with the resolved alert).
    r#"
    CREATE TABLE denied_limits (
        tenant    TEXT NOT NULL,
        key       TEXT NOT NULL,
        denied_at TEXT NOT NULL,
        body      TEXT NOT NULL,
        PRIMARY KEY (tenant, key)
    ) STRICT;
    CREATE INDEX denied_limits_by_age ON denied_limits (denied_at);
    "#,
    // 17: a budget alert's scope and window (`Alert::budget`, JSON), and when a budget alert
    // of a window shorter than a month may be deleted (`alerts::retain_until`; issue 18,
    // SPEC §12: a minute budget can alert every minute).
    r#"
    ALTER TABLE alerts ADD COLUMN budget TEXT;
    ALTER TABLE alerts ADD COLUMN retain_until TEXT;
    CREATE INDEX alerts_retention ON alerts (retain_until) WHERE retain_until IS NOT NULL;
    "#,
    // 18: compact events (issue 23): timestamps as integer nanoseconds, the fingerprint as
    // bytes, model and price version by reference, counts as columns; the table rebuilt
    // (the SQL and what it keeps exact are in `compact_events`).
    super::compact_events::MIGRATION,
    // 19: grant upkeep (issue 19, docs/credits.md "Expiry and pruning"): when the
    // aggregation must look at a grant (its expiry, then pruning it), and whether it was
    // pruned (archived: out of its wallet, kept under its id). Grants stored before get
    // their expiry as due instant (whole seconds, floor: the pass checks the exact instant).
    r#"
    ALTER TABLE wallet_grants ADD COLUMN due_ms INTEGER;
    ALTER TABLE wallet_grants ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
    UPDATE wallet_grants
       SET due_ms = unixepoch(json_extract(record, '$.expires_at')) * 1000
     WHERE json_extract(record, '$.expires_at') IS NOT NULL;
    CREATE INDEX wallet_grants_due ON wallet_grants (due_ms) WHERE due_ms IS NOT NULL;
    "#,
    // 20: late org events (issue 18, store::OrgBillingStore): the pending adjustments of
    // an org's invoiced periods.
    r#"
    CREATE TABLE org_adjustments (
        tenant       TEXT NOT NULL,
        org_id       TEXT NOT NULL,
        period_start TEXT NOT NULL,
        events       INTEGER NOT NULL,
        cost         TEXT NOT NULL,
        PRIMARY KEY (tenant, org_id, period_start)
    ) STRICT;
    "#,
    // 21: late draws (docs/credits.md, "Late events on prepaid plans"): the draw of a user's
    // event recorded or re-priced after its period was invoiced carries the user's
    // `billed_to` at that write (NULL for every other draw), so that the invoice billing
    // its adjustment, not its closed period, credits it (`late_draws`).
    r#"
    ALTER TABLE wallet_draws ADD COLUMN late_billed_to TEXT;
    CREATE INDEX wallet_draws_late ON wallet_draws (tenant, wallet, late_billed_to)
        WHERE late_billed_to IS NOT NULL;
    "#,
    // 22: a budget counter row is kept until `keep_until` (was `window_end`): a `period`
    // window's counter is what an org's invoice bills, so it stays 61 days past its end
    // (budget_counters::keep_until), not one; other windows keep their end.
    r#"
    ALTER TABLE budget_counters RENAME COLUMN window_end TO keep_until;
    UPDATE budget_counters
       SET keep_until = strftime('%Y-%m-%dT%H:%M:%S', substr(keep_until, 1, 19), '+61 days')
                        || substr(keep_until, 20)
     WHERE instr(counter, '#period#') > 0;
    "#,
];

/// Settings every connection gets: lock wait, foreign keys, the decimal functions.
pub(super) fn configure(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    // The query planner stability guarantee: a cached statement keeps its plan whatever
    // is bound to it. Without it SQLite (built with STAT4) marks some statements to be
    // re-prepared on every new binding — the budgets-by-scope lookup was parsed and
    // planned again on each check (issue 23: 21 % of a check over budgets).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    super::decimal::register(conn)?;
    Ok(())
}

/// Settings of the file, set by the writer connection.
///
/// `synchronous = FULL`: with WAL, NORMAL keeps the file consistent but may lose the last
/// commits on a power cut or OS crash, and `meter serve` promises to lose nothing it
/// acknowledged (usage reports are answered `recorded` only after the commit). The price,
/// one fsync per commit, is shared by every write of a batch (see the writer thread).
pub(super) fn configure_writer(conn: &Connection) -> StoreResult<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "cannot enable WAL (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Every write goes through this one connection: room for all the statements of the
    // write paths, so that a mixed load does not evict and parse them again.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(())
}

/// Brings the file to `migrations.len()`, one transaction per migration.
pub(super) fn migrate(conn: &mut Connection, migrations: &[&str]) -> StoreResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations.len();
    let current = usize::try_from(current)
        .ok()
        .filter(|v| *v <= known)
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "schema version {current} is not one this build knows (0..={known})"
            ))
        })?;
    for (index, sql) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-read inside the lock: another process may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if usize::try_from(now).is_ok_and(|v| v > index) {
            continue;
        }
        tx.execute_batch(sql)?;
        let version = i64::try_from(index + 1)
            .map_err(|_| StoreError::Corrupt("too many migrations".to_owned()))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version of an open file.
pub(super) fn version(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}
