//! ClientRequestToken idempotency of write transactions.
//!
//! A token names one transaction for [`TOKEN_LIFETIME`] after it committed:
//! the same token with the same request (same fingerprint) is answered from
//! the record without applying anything again, and the same token with a
//! different request is refused (IdempotentParameterMismatchException). A
//! cancelled or failed transaction records nothing, so retrying its token
//! runs it again (as DynamoDB does).
//!
//! While a transaction with a token runs, a second request with that token
//! waits for it (a per-token lock) and then gets the recorded answer, so two
//! concurrent retries never both apply.
//!
//! Memory stays bounded: a record holds the request fingerprint and the
//! per-table capacity of the answer, not items; records expire after the
//! lifetime and the oldest ones are dropped beyond [`MAX_RECORDS`]. The cache
//! lives in this process only: in standalone mode that is the whole server;
//! the cluster will keep records next to the transaction records.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// How long a committed transaction's token is remembered (DynamoDB: 10 min).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Most token records kept; beyond it the oldest are forgotten early.
pub const MAX_RECORDS: usize = 100_000;

/// What is remembered of a committed transaction: enough to answer a retry.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// Number of actions of the transaction.
    pub actions: usize,
    /// Read capacity a retry reports, per table in request order.
    pub replay_capacity: Vec<(String, f64)>,
}

enum Entry {
    Running {
        fingerprint: u64,
        lock: Arc<tokio::sync::Mutex<()>>,
    },
    Done {
        fingerprint: u64,
        at: Instant,
        record: Arc<Recorded>,
    },
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Committed tokens in commit order, for expiry and the bound.
    order: VecDeque<(Instant, String)>,
}

/// The token records of one server.
pub struct TokenCache {
    inner: Mutex<Inner>,
    lifetime: Duration,
    max_records: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(TOKEN_LIFETIME, MAX_RECORDS)
    }
}

/// The outcome of [`TokenCache::claim`].
pub enum Claim<'a> {
    /// Run the transaction, then [`RunGuard::commit`] it (dropping the guard
    /// records nothing).
    Run(RunGuard<'a>),
    /// The transaction already committed: answer from the record.
    Replay(Arc<Recorded>),
    /// The token belongs to a different request.
    Mismatch,
}

/// The right to run the transaction of a token; releases waiters when dropped.
pub struct RunGuard<'a> {
    cache: &'a TokenCache,
    token: String,
    fingerprint: u64,
    _running: OwnedMutexGuard<()>,
}

impl TokenCache {
    pub fn new(lifetime: Duration, max_records: usize) -> TokenCache {
        TokenCache {
            inner: Mutex::new(Inner::default()),
            lifetime,
            max_records,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (every update is a single insert or remove), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `token` for a request with `fingerprint`, waiting while another
    /// request with the same token runs.
    pub async fn claim(&self, token: &str, fingerprint: u64) -> Claim<'_> {
        loop {
            let running = {
                let mut inner = self.lock();
                self.expire(&mut inner, Instant::now());
                match inner.entries.get(token) {
                    None => {
                        let lock = Arc::new(tokio::sync::Mutex::new(()));
                        let Ok(guard) = lock.clone().try_lock_owned() else {
                            continue;
                        };
                        inner
                            .entries
                            .insert(token.to_owned(), Entry::Running { fingerprint, lock });
                        return Claim::Run(RunGuard {
                            cache: self,
                            token: token.to_owned(),
                            fingerprint,
                            _running: guard,
                        });
                    }
                    Some(Entry::Running {
                        fingerprint: other,
                        lock,
                    }) => {
                        if *other != fingerprint {
                            return Claim::Mismatch;
                        }
                        lock.clone()
                    }
                    Some(Entry::Done {
                        fingerprint: other,
                        record,
                        ..
                    }) => {
                        if *other != fingerprint {
                            return Claim::Mismatch;
                        }
                        return Claim::Replay(record.clone());
                    }
                }
            };
            // Wait for the running request to finish, then look again.
            drop(running.lock().await);
        }
    }

    /// Forgets expired records and the oldest beyond the bound.
    fn expire(&self, inner: &mut Inner, now: Instant) {
        while let Some((at, token)) = inner.order.front() {
            let expired = now.saturating_duration_since(*at) >= self.lifetime;
            if !expired && inner.order.len() <= self.max_records {
                break;
            }
            // Only remove the record this queue entry was made for.
            if let Some(Entry::Done { at: done_at, .. }) = inner.entries.get(token) {
                if done_at == at {
                    inner.entries.remove(token);
                }
            }
            inner.order.pop_front();
        }
    }

    /// Number of remembered committed tokens.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| matches!(e, Entry::Done { .. }))
            .count()
    }
}

impl RunGuard<'_> {
    /// Records the committed transaction's answer under the token.
    pub fn commit(self, record: Recorded) {
        let now = Instant::now();
        let mut inner = self.cache.lock();
        inner.entries.insert(
            self.token.clone(),
            Entry::Done {
                fingerprint: self.fingerprint,
                at: now,
                record: Arc::new(record),
            },
        );
        inner.order.push_back((now, self.token.clone()));
        self.cache.expire(&mut inner, now);
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        if matches!(inner.entries.get(&self.token), Some(Entry::Running { .. })) {
            inner.entries.remove(&self.token);
        }
        // The owned lock guard is released after this, waking the waiters.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> Recorded {
        Recorded {
            actions: n,
            replay_capacity: vec![("t".into(), 2.0)],
        }
    }

    #[tokio::test]
    async fn committed_token_replays_and_rejects_other_requests() {
        let cache = TokenCache::default();
        let Claim::Run(guard) = cache.claim("a", 1).await else {
            panic!("first claim must run");
        };
        guard.commit(record(3));
        match cache.claim("a", 1).await {
            Claim::Replay(r) => assert_eq!(*r, record(3)),
            _ => panic!("expected a replay"),
        }
        assert!(matches!(cache.claim("a", 2).await, Claim::Mismatch));
        assert!(matches!(cache.claim("b", 2).await, Claim::Run(_)));
    }

    #[tokio::test]
    async fn a_failed_run_records_nothing() {
        let cache = TokenCache::default();
        let Claim::Run(guard) = cache.claim("a", 1).await else {
            panic!("first claim must run");
        };
        drop(guard);
        assert!(matches!(cache.claim("a", 2).await, Claim::Run(_)));
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn a_concurrent_retry_waits_for_the_running_request() {
        let cache = Arc::new(TokenCache::default());
        let Claim::Run(guard) = cache.claim("a", 1).await else {
            panic!("first claim must run");
        };
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                match cache.claim("a", 1).await {
                    Claim::Replay(r) => r.actions,
                    _ => 0,
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        // A different request with the running token is refused at once.
        assert!(matches!(cache.claim("a", 9).await, Claim::Mismatch));
        guard.commit(record(7));
        assert_eq!(waiter.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn records_expire_and_stay_bounded() {
        let cache = TokenCache::new(Duration::from_millis(30), 2);
        for token in ["a", "b", "c"] {
            let Claim::Run(guard) = cache.claim(token, 1).await else {
                panic!("must run");
            };
            guard.commit(record(1));
        }
        assert_eq!(
            cache.len(),
            2,
            "the oldest record is dropped beyond the bound"
        );
        assert!(matches!(cache.claim("a", 2).await, Claim::Run(_)));
        assert!(matches!(cache.claim("c", 1).await, Claim::Replay(_)));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(matches!(cache.claim("c", 2).await, Claim::Run(_)));
        assert_eq!(cache.len(), 0);
    }
}
