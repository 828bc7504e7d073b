//! The supervisor of Partita's long-lived background tasks.
//!
//! Owns: running each background task (a std thread or a tokio task) so
//! that a panic or an error never ends it silently. A failure is logged
//! with the task's name and what it works on, counted in
//! `partita_background_task_failures_total{task}` ([`render_metrics`]), and
//! then either the task is restarted after a backoff (100 ms doubling to
//! 5 s, back to 100 ms after a run of a minute) or, where a restart is not
//! safe, the process exits with a clear error so that whatever supervises
//! the process (the kubelet, systemd, `partita dev-cluster`) restarts it:
//! never a half-alive process. A task that failed [`FAILING_AFTER`] times in
//! a row without progress since makes the process not ready ([`failing`],
//! used by `/readyz`) until it progresses again.
//!
//! Must not know: what the tasks do. Tasks report progress and the errors
//! they retry on their own through their [`Task`] handle.
//!
//! The registry is process-wide (like a metrics registry): one process has
//! one set of background tasks and one readiness, whichever component
//! started them.
//!
//! The tasks and what a failure does:
//!
//! | task | where | on failure |
//! |---|---|---|
//! | `writer` | storage: the group-commit writer | exit: queued writes would hang |
//! | `gsi_delivery` | storage: global index outbox delivery | restart (delivery is idempotent, its state is on disk) |
//! | `gsi_backfill` | storage: one per index being created | restart (re-putting entries is harmless) |
//! | `housekeeping` | storage: TTL sweep, change-log trimming and shard rolls, tombstone purges | restart (each pass starts from disk) |
//! | `auth_reload` | api: the credentials and policies file reloader | restart |
//! | `replication_reload` | api: the replication file reloader | restart |
//! | `replication_reconcile` | api: keeps one replicator per replicated table and peer | restart |
//! | `replicator` | api: one per replicated table and peer region | restart (cursors are durable) |
//! | `topology_reload` | server: the gateway's topology file reloader | restart |
//! | `raft_core` | cluster: watches each partition's Raft core | exit: a stopped core leaves the replica half alive |
//! | `raft_housekeeping` | cluster: the leader's change-log maintenance and TTL expiry proposals | restart (they go through the log) |
//!
//! Whatever the task, a storage error that reports corruption
//! (`StorageError::Corrupt`) ends the process ([`Task::fatal`]): going on
//! could spread the damage. `partita serve` has no certificate reloader:
//! its HTTPS certificate is read at start.
//!
//! Failpoints ([`failpoint`]): in debug builds only, the environment
//! variable `PARTITA_FAILPOINTS` (`name[:count],...`) makes the named points
//! panic, `count` times or always. Release builds compile them to nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Consecutive failures without progress after which a task makes the
/// process not ready.
pub const FAILING_AFTER: u32 = 3;

/// The failure counter's metric name.
pub const FAILURES_METRIC: &str = "partita_background_task_failures_total";

/// Exit code of a process ended by a task that cannot be restarted.
pub const EXIT_CODE: i32 = 70;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A run at least this long starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What a failure of a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Run the task again after a backoff.
    Restart,
    /// Exit the process (a restart in place is not safe).
    Exit,
}

struct TaskState {
    name: &'static str,
    /// What the instance works on (a table, an index), for logs and
    /// readiness; empty for a process's single instance.
    detail: String,
    consecutive: AtomicU32,
    last_error: Mutex<String>,
}

struct Registry {
    /// Failures per task name since the process started.
    failures: BTreeMap<&'static str, u64>,
    /// Running instances by id.
    live: BTreeMap<u64, Arc<TaskState>>,
    next_id: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    failures: BTreeMap::new(),
    live: BTreeMap::new(),
    next_id: 0,
});

/// A supervised task's handle to the supervisor.
#[derive(Clone)]
pub struct Task {
    id: u64,
    state: Arc<TaskState>,
}

impl Task {
    fn register(name: &'static str, detail: String) -> Task {
        let state = Arc::new(TaskState {
            name,
            detail,
            consecutive: AtomicU32::new(0),
            last_error: Mutex::new(String::new()),
        });
        let mut registry = REGISTRY.lock();
        registry.failures.entry(name).or_insert(0);
        let id = registry.next_id;
        registry.next_id += 1;
        registry.live.insert(id, state.clone());
        Task { id, state }
    }

    /// Returns the task's name.
    pub fn name(&self) -> &'static str {
        self.state.name
    }

    /// Records that the task did a unit of work: it is healthy again.
    pub fn progressed(&self) {
        if self.state.consecutive.load(Ordering::Relaxed) != 0 {
            self.state.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failure the task retries on its own (it goes on running):
    /// logged, counted, and part of readiness like a failure that ends a
    /// run.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        let consecutive = self.count_failure(&error);
        tracing::warn!(task = self.state.name, on = %self.state.detail, consecutive, %error,
            "a background task failed; it retries");
    }

    /// Records a failure after which going on is not safe (the store
    /// reported corruption, say): logs and counts it and exits the process.
    pub fn fatal(&self, error: &dyn std::fmt::Display) -> ! {
        let error = error.to_string();
        self.ended(&error, OnFailure::Exit);
        unreachable!("ended with OnFailure::Exit returns only by exiting")
    }

    fn count_failure(&self, error: &str) -> u32 {
        *REGISTRY.lock().failures.entry(self.state.name).or_insert(0) += 1;
        *self.state.last_error.lock() = error.to_string();
        self.state.consecutive.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Handles a failure that ended a run: logs and counts it, and exits
    /// the process when the task cannot be restarted.
    fn ended(&self, error: &str, on_failure: OnFailure) {
        let consecutive = self.count_failure(error);
        match on_failure {
            OnFailure::Restart => {
                tracing::error!(task = self.state.name, on = %self.state.detail, consecutive,
                    %error, "a background task failed; restarting it")
            }
            OnFailure::Exit => {
                tracing::error!(task = self.state.name, on = %self.state.detail, %error,
                    "a background task that cannot be restarted in place failed; exiting so that the process is restarted");
                eprintln!(
                    "partita: background task {} failed and cannot be restarted in place: {error}; exiting",
                    self.state.name
                );
                std::process::exit(EXIT_CODE);
            }
        }
    }
}

/// Removes a task instance from the registry when its supervisor loop ends.
struct Deregister(u64);

impl Drop for Deregister {
    fn drop(&mut self) {
        REGISTRY.lock().live.remove(&self.0);
    }
}

struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: BACKOFF_START,
        }
    }

    /// Returns the pause before the next run, given how long the last ran.
    fn after(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.next = BACKOFF_START;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    format!("panicked: {text}")
}

/// Runs `run` on a thread of its own under supervision. `run` returns
/// `Ok(())` when the task is done (its component is stopping); an error or
/// a panic is a failure, handled as `on_failure` says. The thread is named
/// `partita-{name}`.
pub fn spawn_thread<F>(
    name: &'static str,
    detail: impl Into<String>,
    on_failure: OnFailure,
    mut run: F,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnMut(&Task) -> Result<(), String> + Send + 'static,
{
    let task = Task::register(name, detail.into());
    let deregister = Deregister(task.id);
    let spawned = std::thread::Builder::new()
        .name(format!("partita-{}", name.replace('_', "-")))
        .spawn(move || {
            let _deregister = deregister;
            let mut backoff = Backoff::new();
            loop {
                let started = Instant::now();
                let error = match catch_unwind(AssertUnwindSafe(|| run(&task))) {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(panic) => panic_message(&*panic),
                };
                task.ended(&error, on_failure);
                std::thread::sleep(backoff.after(started.elapsed()));
            }
        });
    spawned
}

/// Aborts a spawned tokio task when dropped (the supervising task was
/// aborted or its runtime is shutting down).
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), String>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the future `make` returns as a tokio task under supervision,
/// calling `make` again for each restart. The future returns `Ok(())` when
/// the task is done; an error or a panic is a failure, handled as
/// `on_failure` says. Aborting the returned handle ends the task.
pub fn spawn_task<F, Fut>(
    name: &'static str,
    detail: impl Into<String>,
    on_failure: OnFailure,
    mut make: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Task) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let task = Task::register(name, detail.into());
    let deregister = Deregister(task.id);
    tokio::spawn(async move {
        let _deregister = deregister;
        let mut backoff = Backoff::new();
        loop {
            let started = Instant::now();
            let mut run = AbortOnDrop(tokio::spawn(make(task.clone())));
            let error = match (&mut run.0).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(e) if e.is_panic() => panic_message(&*e.into_panic()),
                // Cancelled: the runtime is shutting down.
                Err(_) => return,
            };
            task.ended(&error, on_failure);
            tokio::time::sleep(backoff.after(started.elapsed())).await;
        }
    })
}

/// A task instance that keeps failing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    pub task: &'static str,
    pub detail: String,
    pub consecutive: u32,
    pub error: String,
}

impl std::fmt::Display for Failing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "background task {}", self.task)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        write!(
            f,
            " failed {} times in a row: {}",
            self.consecutive, self.error
        )
    }
}

/// Returns the running task instances that failed [`FAILING_AFTER`] times
/// or more in a row without progress since.
pub fn failing() -> Vec<Failing> {
    let live: Vec<Arc<TaskState>> = REGISTRY.lock().live.values().cloned().collect();
    live.iter()
        .filter_map(|state| {
            let consecutive = state.consecutive.load(Ordering::Relaxed);
            (consecutive >= FAILING_AFTER).then(|| Failing {
                task: state.name,
                detail: state.detail.clone(),
                consecutive,
                error: state.last_error.lock().clone(),
            })
        })
        .collect()
}

/// Returns the failures of each task since the process started, for every
/// task that was ever started.
pub fn failure_counts() -> BTreeMap<&'static str, u64> {
    REGISTRY.lock().failures.clone()
}

/// Renders the failure counters in the Prometheus text format.
pub fn render_metrics() -> String {
    let mut out = format!(
        "# HELP {FAILURES_METRIC} Failures (panics and errors) of background tasks since the process started.\n# TYPE {FAILURES_METRIC} counter\n"
    );
    for (task, count) in failure_counts() {
        let _ = writeln!(out, "{FAILURES_METRIC}{{task=\"{task}\"}} {count}");
    }
    out
}

/// Panics when the failpoint `name` is switched on (debug builds only; see
/// the module docs).
#[cfg(debug_assertions)]
pub fn failpoint(name: &str) {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    /// Failpoint name → remaining panics (`None`: always).
    static POINTS: OnceLock<Mutex<HashMap<String, Option<u64>>>> = OnceLock::new();
    let points = POINTS.get_or_init(|| {
        let spec = std::env::var("PARTITA_FAILPOINTS").unwrap_or_default();
        Mutex::new(parse_failpoints(&spec))
    });
    let fire = {
        let mut points = points.lock();
        match points.get_mut(name) {
            None | Some(Some(0)) => false,
            Some(None) => true,
            Some(Some(left)) => {
                *left -= 1;
                true
            }
        }
    };
    if fire {
        panic!("failpoint {name}");
    }
}

/// Failpoints compile to nothing in release builds.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn failpoint(_name: &str) {}

/// Parses `name[:count],...`; entries that do not parse are ignored with a
/// warning.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
fn parse_failpoints(spec: &str) -> std::collections::HashMap<String, Option<u64>> {
    let mut points = std::collections::HashMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, count) = match entry.split_once(':') {
            Some((name, count)) => match count.parse::<u64>() {
                Ok(n) => (name, Some(n)),
                Err(_) => {
                    tracing::warn!(entry, "PARTITA_FAILPOINTS: not name[:count]; ignored");
                    continue;
                }
            },
            None => (entry, None),
        };
        points.insert(name.to_string(), count);
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn count_of(task: &str) -> u64 {
        failure_counts().get(task).copied().unwrap_or(0)
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < end, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_panicking_thread_is_restarted_counted_and_failing_until_it_progresses() {
        let runs = Arc::new(AtomicUsize::new(0));
        let seen = runs.clone();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let handle = spawn_thread("test_thread", "t1", OnFailure::Restart, move |task| {
            let run = seen.fetch_add(1, Ordering::SeqCst);
            if run < 3 {
                panic!("run {run} fails");
            }
            released.recv().unwrap();
            task.progressed();
            Ok(())
        })
        .unwrap();
        wait_until("the failing task shows in failing()", || {
            runs.load(Ordering::SeqCst) >= 3 && failing().iter().any(|f| f.task == "test_thread")
        });
        let f = failing()
            .into_iter()
            .find(|f| f.task == "test_thread")
            .unwrap();
        assert_eq!(f.detail, "t1");
        assert_eq!(f.consecutive, 3);
        assert_eq!(f.error, "panicked: run 2 fails");
        release.send(()).unwrap();
        handle.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4, "ran until it succeeded");
        assert_eq!(count_of("test_thread"), 3);
        assert!(
            failing().iter().all(|f| f.task != "test_thread"),
            "ended tasks are not failing"
        );
        assert!(render_metrics()
            .contains("partita_background_task_failures_total{task=\"test_thread\"} 3\n"));
    }

    #[test]
    fn reported_errors_count_and_progress_clears_them() {
        let (go, wait) = std::sync::mpsc::channel::<bool>();
        let (told, heard) = std::sync::mpsc::channel::<()>();
        let handle = spawn_thread("test_reported", "", OnFailure::Restart, move |task| {
            while let Ok(fail) = wait.recv() {
                if fail {
                    task.failed(&"disk on fire");
                } else {
                    task.progressed();
                }
                told.send(()).unwrap();
            }
            Ok(())
        })
        .unwrap();
        let step = |fail: bool| {
            go.send(fail).unwrap();
            heard.recv().unwrap();
        };
        for _ in 0..FAILING_AFTER {
            step(true);
        }
        let f = failing()
            .into_iter()
            .find(|f| f.task == "test_reported")
            .unwrap();
        assert_eq!(f.error, "disk on fire");
        assert_eq!(
            f.to_string(),
            "background task test_reported failed 3 times in a row: disk on fire"
        );
        step(false);
        assert!(failing().iter().all(|f| f.task != "test_reported"));
        assert_eq!(count_of("test_reported"), 3);
        drop(go);
        handle.join().unwrap();
    }

    #[tokio::test]
    async fn a_tokio_task_that_errs_or_panics_is_restarted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let seen = runs.clone();
        let handle = spawn_task("test_tokio", "", OnFailure::Restart, move |_task| {
            let seen = seen.clone();
            async move {
                match seen.fetch_add(1, Ordering::SeqCst) {
                    0 => Err("first run errs".to_string()),
                    1 => panic!("second run panics"),
                    _ => Ok(()),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), handle)
            .await
            .expect("the task ends")
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(count_of("test_tokio"), 2);
    }

    #[tokio::test]
    async fn aborting_a_supervised_task_ends_its_run() {
        let dropped = Arc::new(AtomicUsize::new(0));
        struct Flag(Arc<AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let seen = dropped.clone();
        let handle = spawn_task("test_abort", "", OnFailure::Restart, move |_task| {
            let flag = Flag(seen.clone());
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.abort();
        let end = Instant::now() + Duration::from_secs(20);
        while dropped.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < end, "the run was not aborted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_long_run() {
        let mut b = Backoff::new();
        let pauses: Vec<u64> = (0..8)
            .map(|_| b.after(Duration::ZERO).as_millis() as u64)
            .collect();
        assert_eq!(pauses, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.after(HEALTHY_RUN), BACKOFF_START);
    }

    #[test]
    fn failpoint_specs_parse() {
        let points = parse_failpoints("a, b:2 ,c:x,,d:0");
        assert_eq!(points.get("a"), Some(&None));
        assert_eq!(points.get("b"), Some(&Some(2)));
        assert_eq!(points.get("c"), None);
        assert_eq!(points.get("d"), Some(&Some(0)));
    }
}
