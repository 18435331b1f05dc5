//! The single writer thread of the SQLite adapter: queued writes committed in groups, each
//! in its own savepoint, and the WAL checkpointed between groups.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

/// Most writes committed together by the writer thread.
const MAX_BATCH: usize = 256;

/// One queued write, as the writer thread sees it.
pub(super) trait WriteJob: Send {
    /// Runs the write (inside its savepoint); `true` if it succeeded and should be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's fate is known; `failure` when the group was not
    /// committed (then nothing of this write was kept, whatever `run` returned).
    fn finish(self: Box<Self>, failure: Option<&str>);
}

pub(super) struct Pending<T, F> {
    pub(super) work: Option<F>,
    pub(super) result: Option<StoreResult<T>>,
    pub(super) reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, failure: Option<&str>) {
        let answer = match (failure, self.result) {
            (Some(why), _) => Err(StoreError::Unavailable(format!(
                "write not committed: {why}"
            ))),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Unavailable("write did not run".to_owned())),
        };
        // The caller may have given up waiting; its write is committed all the same.
        let _ = self.reply.send(answer);
    }
}

pub(super) fn writer_loop(
    conn: &Connection,
    jobs: &mpsc::Receiver<Box<dyn WriteJob>>,
    checkpoint_due: &AtomicBool,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let failure = run_batch(conn, &mut batch).err();
        for job in batch {
            job.finish(failure.as_deref());
        }
        // After the answers, before the next group.
        if checkpoint_due.swap(false, Ordering::Relaxed) {
            checkpoint(conn);
        }
    }
}

/// WAL pages after a commit that make a checkpoint due: SQLite's automatic threshold.
const CHECKPOINT_PAGES: std::os::raw::c_int = 1000;

/// Replaces SQLite's automatic checkpoint of the writer connection, which runs inside the
/// commit (before the writer can answer the group that committed), by a flag that
/// [`writer_loop`] reads once the group is answered: the writer then checkpoints before it
/// takes the next group, on its own connection, as SQLite would.
///
/// The writer checkpoints itself because only it can restart the log: a write transaction
/// starts the WAL again from its beginning when it finds every frame copied into the file.
/// A separate checkpoint thread (issue 23, 2026-12-01) never caught up with a busy writer,
/// so the log was never restarted under sustained load: the `-wal` file grew past 200 MB
/// in seconds of single-event load, every page look-up searched its whole index, and
/// single events were 20–35 % slower at 16 and 64 connections (BENCHMARKS.md, "The
/// checkpoint back on the writer").
pub(super) fn checkpoint_between_groups(conn: &mut Connection) -> StoreResult<Arc<AtomicBool>> {
    let due = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&due);
    conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
        if pages >= CHECKPOINT_PAGES {
            flag.store(true, Ordering::Relaxed);
        }
        Ok(())
    }))?;
    Ok(due)
}

/// A passive checkpoint: copies what no reader still needs from the WAL into the file and
/// never waits for a reader. What it cannot copy yet is copied by a later one.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "SQLite WAL checkpoint failed; the next one retries it");
    }
}

/// Runs a group of writes in one transaction, each in its own savepoint.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> Result<(), String> {
    run_sql(conn, "BEGIN IMMEDIATE")?;
    let outcome = (|| {
        for job in batch.iter_mut() {
            run_sql(conn, "SAVEPOINT job")?;
            // A panicking job is a bug; it is rolled back and answered, the thread lives on.
            let kept = catch_unwind(AssertUnwindSafe(|| job.run(conn))).unwrap_or(false);
            if !kept {
                run_sql(conn, "ROLLBACK TO job")?;
            }
            run_sql(conn, "RELEASE job")?;
        }
        run_sql(conn, "COMMIT")
    })();
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

/// One statement of the writer's transaction control, prepared once per connection
/// (`execute_batch` parses its SQL on every call: four times per event, on the one
/// thread every write waits for; issue 23).
fn run_sql(conn: &Connection, sql: &str) -> Result<(), String> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(|e| e.to_string())
}
