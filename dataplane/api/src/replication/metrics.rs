//! The `partita_replication_*` series, in a registry of their own that the
//! admin port appends to `/metrics`. Labels are bounded: table names of
//! replicated tables and region names of configured peers (changes are
//! accepted only from authenticated peers).

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub(crate) struct ReplicationMetrics {
    registry: Registry,
    lag: GaugeVec,
    pending: IntGaugeVec,
    sent: IntCounterVec,
    applied: IntCounterVec,
    /// (table, region) pairs with lag/pending series.
    pairs: Mutex<BTreeSet<(String, String)>>,
}

impl ReplicationMetrics {
    pub fn new() -> ReplicationMetrics {
        let registry = Registry::new();
        let lag = GaugeVec::new(
            Opts::new(
                "partita_replication_lag_seconds",
                "Age of the oldest local change not yet applied by the peer region (0 when none is pending)",
            ),
            &["table", "region"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let pending = IntGaugeVec::new(
            Opts::new(
                "partita_replication_pending_changes",
                "Change-log records not yet acknowledged by the peer region",
            ),
            &["table", "region"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let sent = IntCounterVec::new(
            Opts::new(
                "partita_replication_sent_total",
                "Changes shipped to the peer region and acknowledged (full copies included)",
            ),
            &["table", "region"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let applied = IntCounterVec::new(
            Opts::new(
                "partita_replication_applied_total",
                "Changes received from other regions, by outcome: applied (newer) or superseded (last writer wins kept the local version)",
            ),
            &["table", "origin_region", "outcome"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let _ = registry.register(Box::new(lag.clone()));
        let _ = registry.register(Box::new(pending.clone()));
        let _ = registry.register(Box::new(sent.clone()));
        let _ = registry.register(Box::new(applied.clone()));
        ReplicationMetrics {
            registry,
            lag,
            pending,
            sent,
            applied,
            pairs: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn set_progress(&self, table: &str, region: &str, lag_seconds: f64, pending: u64) {
        self.lag
            .with_label_values(&[table, region])
            .set(lag_seconds);
        self.pending
            .with_label_values(&[table, region])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        // Make the counter exist at 0 too.
        self.sent.with_label_values(&[table, region]).inc_by(0);
        self.pairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((table.to_string(), region.to_string()));
    }

    pub fn sent(&self, table: &str, region: &str, n: u64) {
        self.sent.with_label_values(&[table, region]).inc_by(n);
    }

    pub fn applied(&self, table: &str, origin: &str, applied: u64, superseded: u64) {
        self.applied
            .with_label_values(&[table, origin, "applied"])
            .inc_by(applied);
        self.applied
            .with_label_values(&[table, origin, "superseded"])
            .inc_by(superseded);
    }

    /// Drops the lag and pending series of pairs no longer replicated.
    pub fn retain(&self, live: &[(String, String)]) {
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<_> = pairs
            .iter()
            .filter(|p| !live.contains(p))
            .cloned()
            .collect();
        for (table, region) in gone {
            let _ = self.lag.remove_label_values(&[&table, &region]);
            let _ = self.pending.remove_label_values(&[&table, &region]);
            pairs.remove(&(table, region));
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Metric definitions are constants; building them cannot fail.
fn unreachable_metric<T>() -> T {
    panic!("invalid replication metric definition")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_their_labels() {
        let m = ReplicationMetrics::new();
        m.set_progress("T", "eu-west-1", 0.5, 3);
        m.sent("T", "eu-west-1", 2);
        m.applied("T", "eu-west-1", 4, 1);
        let text = m.render();
        assert!(
            text.contains("partita_replication_lag_seconds{region=\"eu-west-1\",table=\"T\"} 0.5")
        );
        assert!(text
            .contains("partita_replication_pending_changes{region=\"eu-west-1\",table=\"T\"} 3"));
        assert!(text.contains("partita_replication_sent_total{region=\"eu-west-1\",table=\"T\"} 2"));
        assert!(text.contains(
            "partita_replication_applied_total{origin_region=\"eu-west-1\",outcome=\"superseded\",table=\"T\"} 1"
        ));
        m.retain(&[]);
        assert!(!m.render().contains("partita_replication_lag_seconds{"));
    }
}
