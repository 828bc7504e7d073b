//! Reloading a configuration file when it changes (the auth file, the
//! replication file): one supervised task per file.
//!
//! The task polls the file every second; when its modification time or
//! length changed, it loads the file off the async workers and installs a
//! valid result; an invalid one is logged and the previous configuration
//! kept. It runs under `partita_supervise` (restart after a failure, which
//! reloads the file at once); the failpoint named after the task sits
//! before each load.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use partita_supervise::{OnFailure, Task};
use tokio::task::JoinHandle;

/// What identifies a version of a file: modification time and length.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Starts the supervised reloader `task` of the file at `path`, whose
/// current version is already installed: `load` reads and validates it
/// (blocking), `install` puts a valid result in place. `what` names the
/// file in logs ("auth file").
pub(crate) fn spawn_reloader<T, E, L, I>(
    task: &'static str,
    what: &'static str,
    path: PathBuf,
    load: L,
    install: I,
) -> JoinHandle<()>
where
    T: Send + 'static,
    E: Display + Send + 'static,
    L: Fn(&Path) -> Result<T, E> + Clone + Send + Sync + 'static,
    I: Fn(T) + Clone + Send + Sync + 'static,
{
    let mut first = Some(stamp(&path));
    let detail = path.display().to_string();
    partita_supervise::spawn_task(task, detail, OnFailure::Restart, move |handle| {
        // After a failure, reload at once: the file may have changed meanwhile.
        let last = first.take().unwrap_or(None);
        watch(
            handle,
            what,
            path.clone(),
            last,
            load.clone(),
            install.clone(),
        )
    })
}

async fn watch<T, E, L, I>(
    task: Task,
    what: &'static str,
    path: PathBuf,
    mut last: Option<(SystemTime, u64)>,
    load: L,
    install: I,
) -> Result<(), String>
where
    T: Send + 'static,
    E: Display + Send + 'static,
    L: Fn(&Path) -> Result<T, E> + Clone + Send + Sync + 'static,
    I: Fn(T),
{
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = stamp(&path);
        if now == last {
            task.progressed();
            continue;
        }
        partita_supervise::failpoint(task.name());
        last = now;
        let loaded = {
            let (path, load) = (path.clone(), load.clone());
            tokio::task::spawn_blocking(move || load(&path)).await
        };
        match loaded {
            Ok(Ok(value)) => install(value),
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "{what} not reloaded; keeping the previous one")
            }
            Err(e) => task.failed(&format_args!("loading the {what}: {e}")),
        }
    }
}
