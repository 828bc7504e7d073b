//! The housekeeping thread: periodic background work that goes through the
//! writer or the commit lock — the TTL sweep (`ttl`) and change-log
//! maintenance (`stream`: trimming segments past the retention, rolling
//! shards, forgetting closed streams).
//!
//! A replicated store (cluster mode) must not sweep on its own: each
//! replica would delete outside the log. It sets
//! [`crate::StoreOptions::ttl_sweep_interval`] to `Duration::MAX`, which
//! disables the sweeper, and expiry goes through the leader instead.
//!
//! It checks `Shared::stopping` every few milliseconds and is joined at
//! shutdown before the writer stops (it submits to the writer). It runs
//! supervised (`partita_supervise`): a panic restarts it after a backoff,
//! with every schedule starting over; failpoints `stream_trim` and
//! `ttl_sweep` sit before each pass.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use partita_supervise::{OnFailure, Task};

use crate::commit::WriterHandle;
use crate::state::Shared;
use crate::{stream, ttl, StorageError};

const TICK: Duration = Duration::from_millis(20);

/// Returns how often change logs are trimmed: an eighth of the retention,
/// between 50 ms and a minute.
pub(crate) fn trim_interval(retention: Duration) -> Duration {
    (retention / 8).clamp(Duration::from_millis(50), Duration::from_secs(60))
}

/// Starts the housekeeping thread.
pub(crate) fn start(
    shared: Arc<Shared>,
    writer: WriterHandle,
) -> Result<JoinHandle<()>, StorageError> {
    partita_supervise::spawn_thread("housekeeping", "", OnFailure::Restart, move |task| {
        run(&shared, &writer, task);
        Ok(())
    })
    .map_err(|e| StorageError::Engine {
        operation: "start housekeeping",
        message: e.to_string(),
    })
}

fn run(shared: &Arc<Shared>, writer: &WriterHandle, task: &Task) {
    let trim_every = trim_interval(shared.stream_retention);
    let mut next_trim = Instant::now() + trim_every;
    // Tombstones are purged a quarter of the retention apart: the sweep
    // reads every version record of the replicated tables.
    let purge_every = (shared.stream_retention / 4).max(Duration::from_millis(50));
    let mut next_purge = Instant::now() + purge_every;
    // An interval too long to schedule (Duration::MAX) disables the sweeper.
    let after = |d: Duration| Instant::now().checked_add(d);
    let mut next_sweep = after(shared.ttl_sweep_interval);
    while !shared.stopping.load(Ordering::Acquire) {
        std::thread::sleep(TICK);
        let now = Instant::now();
        if now >= next_trim {
            partita_supervise::failpoint("stream_trim");
            match stream::maintain(shared) {
                Ok(()) => task.progressed(),
                Err(e) => crate::report_failure(task, format_args!("change log maintenance"), &e),
            }

            next_trim = Instant::now() + trim_every;
        }
        if now >= next_purge {
            match crate::replica::purge_tombstones(shared) {
                Ok(0) => task.progressed(),
                Ok(purged) => {
                    task.progressed();
                    tracing::debug!(purged, "purged replication tombstones")
                }
                Err(e) => {
                    crate::report_failure(task, format_args!("purging replication tombstones"), &e)
                }
            }
            next_purge = Instant::now() + purge_every;
        }
        if next_sweep.is_some_and(|at| now >= at) {
            let now_secs = (stream::now_ms() / 1000) as i64;
            partita_supervise::failpoint("ttl_sweep");
            match ttl::sweep(shared, writer, now_secs) {
                Ok(stats) => {
                    task.progressed();
                    if stats.candidates > 0 {
                        tracing::debug!(
                            candidates = stats.candidates,
                            deleted = stats.deleted,
                            "ttl sweep"
                        )
                    }
                }
                Err(e) => crate::report_failure(task, format_args!("ttl sweep"), &e),
            }
            next_sweep = after(shared.ttl_sweep_interval);
        }
    }
}
