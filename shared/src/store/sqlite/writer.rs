//! The single writer thread of the SQLite adapter: queued writes committed in groups, each
//! in its own savepoint, and the thread that checkpoints the WAL beside it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::schema;
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

pub(super) fn writer_loop(conn: &Connection, jobs: &mpsc::Receiver<Box<dyn WriteJob>>) {
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
    }
    // Returning drops the connection and its WAL hook: the checkpointer ends too.
}

/// WAL pages after a commit that wake the checkpointer: SQLite's automatic threshold.
const CHECKPOINT_PAGES: std::os::raw::c_int = 1000;

/// The checkpointer copies the WAL into the file at SQLite's own threshold; the writer
/// `conn` no longer does (its WAL hook replaces the automatic checkpoint).
pub(super) fn hand_checkpoints_to_a_thread(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let checkpoint = spawn_checkpointer(path)?;
    conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
        if pages >= CHECKPOINT_PAGES {
            // A wake-up already pending is enough.
            let _ = checkpoint.try_send(());
        }
        Ok(())
    }))?;
    Ok(())
}

/// Starts the thread that checkpoints the WAL into the database file, woken by the
/// writer's WAL hook once a commit leaves [`CHECKPOINT_PAGES`] in the log, with a passive
/// checkpoint (it never blocks the writer or a reader). SQLite's automatic checkpoint
/// ran on the committing connection: on the writer thread that every write waits for,
/// 13 % of its time under single-event load (issue 23). Ends when the writer does.
fn spawn_checkpointer(path: &Path) -> StoreResult<mpsc::SyncSender<()>> {
    let conn = Connection::open(path)?;
    schema::configure(&conn)?;
    let (commits, woken) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("meter-sqlite-checkpoint".to_owned())
        .spawn(move || {
            while woken.recv().is_ok() {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "SQLite WAL checkpoint failed; the next commit retries it");
                }
            }
        })
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot start the SQLite checkpoint thread: {e}"))
        })?;
    Ok(commits)
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
