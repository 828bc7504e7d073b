//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder
//! reconciles. The holder renews every `renew`; another replica takes over
//! when the lease is older than its duration. Losing the lease ends the
//! process (the Deployment restarts it as a follower), the simplest way to
//! guarantee two leaders never act at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew: Duration,
}

/// Returns whether `lease` may be taken by `identity` at `now`.
pub fn can_acquire(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => now.as_second() - renewed.as_second() > duration,
        None => true,
    }
}

/// Tries once to acquire or renew the lease; returns whether we hold it.
pub async fn try_acquire(client: &Client, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let now = Timestamp::now();
    let spec = |transitions: i32, acquire: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs() as i32),
        renew_time: Some(MicroTime(now)),
        acquire_time: acquire,
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec(0, Some(MicroTime(now)))),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !can_acquire(&lease, &cfg.identity, now) {
                return Ok(false);
            }
            let old = lease.spec.clone().unwrap_or_default();
            let ours = old.holder_identity.as_deref() == Some(cfg.identity.as_str());
            let transitions = old.lease_transitions.unwrap_or(0) + i32::from(!ours);
            let acquire = if ours {
                old.acquire_time
            } else {
                Some(MicroTime(now))
            };
            lease.spec = Some(spec(transitions, acquire));
            // replace() carries resourceVersion: a concurrent taker gets 409.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Blocks until the lease is ours.
pub async fn acquire(client: &Client, cfg: &LeaseConfig) {
    loop {
        match try_acquire(client, cfg).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "lease acquisition failed"),
        }
        tokio::time::sleep(cfg.renew).await;
    }
}

/// Renews the lease forever; returns when it was lost or could not be
/// renewed within its duration.
pub async fn hold(client: Client, cfg: LeaseConfig) {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew).await;
        match try_acquire(&client, &cfg).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "lease renewal failed");
                if last_renewed.elapsed() >= cfg.duration {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn only_expired_or_own_leases_are_taken() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let fresh = Timestamp::from_second(1_000_000 - 5).unwrap();
        let stale = Timestamp::from_second(1_000_000 - 16).unwrap();
        assert!(!can_acquire(&lease("other", fresh), "me", now));
        assert!(can_acquire(&lease("other", stale), "me", now));
        assert!(can_acquire(&lease("me", fresh), "me", now));
        assert!(can_acquire(&lease("", fresh), "me", now));
    }
}
