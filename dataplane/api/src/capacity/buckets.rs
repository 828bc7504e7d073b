//! Token buckets: the provisioned capacity of a table or global index split
//! among its partitions, burst credit, adaptive borrowing between
//! partitions, on-demand maximums and the control-plane rate.
//!
//! Everything here is pure arithmetic over a clock value passed in by the
//! caller (seconds, possibly scaled; see [`super::Clock`]), so the rules are
//! unit-tested without sleeping. The rules themselves are stated in the
//! module docs of [`super`].

use std::collections::HashMap;

/// Seconds of unused capacity a partition may bank as burst credit.
pub const BURST_SECONDS: f64 = 300.0;
/// The physical ceiling of one partition, whatever it borrows (DynamoDB's
/// per-partition limits).
pub const PARTITION_MAX_READ_UNITS: f64 = 3000.0;
/// See [`PARTITION_MAX_READ_UNITS`].
pub const PARTITION_MAX_WRITE_UNITS: f64 = 1000.0;

/// Read or write capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
}

impl Kind {
    /// The label value used in metrics ("read" or "write").
    pub fn label(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
        }
    }

    /// The operation part of a throttling reason ("Read" or "Write").
    pub fn reason_part(self) -> &'static str {
        match self {
            Kind::Read => "Read",
            Kind::Write => "Write",
        }
    }

    fn partition_ceiling(self) -> f64 {
        match self {
            Kind::Read => PARTITION_MAX_READ_UNITS,
            Kind::Write => PARTITION_MAX_WRITE_UNITS,
        }
    }
}

/// Which resource a bucket set limits: a table (`index` None) or one of its
/// global secondary indexes, for reads or writes. `table_id` tells
/// incarnations of a re-created table apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    pub table: String,
    pub table_id: String,
    pub index: Option<String>,
    pub kind: Kind,
}

/// How a resource is limited right now (from its table definition).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// Provisioned mode: `units` per second for the whole resource, split
    /// evenly among `partitions`, with burst credit and adaptive borrowing.
    Provisioned { units: f64, partitions: u32 },
    /// On-demand with a maximum: at most `units` per second over the whole
    /// resource (one second of credit, no burst).
    OnDemandMax { units: f64 },
}

/// Why a request may not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The resource (every partition together) is out of capacity.
    Provisioned,
    /// The partition is out of its share and its own ceiling stops it from
    /// borrowing more of the table's unused capacity.
    KeyRange,
    /// The on-demand maximum is reached.
    OnDemandMax,
}

impl Denial {
    /// The limit-type part of DynamoDB's throttling reason.
    pub fn reason_part(self) -> &'static str {
        match self {
            Denial::Provisioned => "ProvisionedThroughputExceeded",
            Denial::KeyRange => "KeyRangeThroughputExceeded",
            Denial::OnDemandMax => "MaxOnDemandThroughputExceeded",
        }
    }
}

/// One limited resource: a bucket per partition plus each partition's
/// physical-ceiling bucket.
#[derive(Clone, Debug)]
pub struct Resource {
    limit: Limit,
    kind: Kind,
    /// Credit per partition (may go negative: a debt repaid before the
    /// partition admits again).
    balance: Vec<f64>,
    /// Credit against the per-partition ceiling (one second, no burst).
    ceiling: Vec<f64>,
    last: f64,
}

impl Resource {
    /// A new resource: each partition starts with its full credit (300
    /// seconds of its share; one second under an on-demand maximum).
    pub fn new(limit: Limit, kind: Kind, now: f64) -> Resource {
        let n = Self::partition_count(limit);
        let mut r = Resource {
            limit,
            kind,
            balance: Vec::new(),
            ceiling: vec![kind.partition_ceiling(); n],
            last: now,
        };
        r.balance = vec![r.cap(); n];
        r
    }

    fn partition_count(limit: Limit) -> usize {
        match limit {
            Limit::Provisioned { partitions, .. } => partitions.max(1) as usize,
            Limit::OnDemandMax { .. } => 1,
        }
    }

    /// Units per second each partition earns.
    fn share(limit: Limit) -> f64 {
        match limit {
            Limit::Provisioned { units, partitions } => units / f64::from(partitions.max(1)),
            Limit::OnDemandMax { units } => units,
        }
    }

    /// The most credit a partition may hold.
    fn cap(&self) -> f64 {
        match self.limit {
            Limit::Provisioned { .. } => Self::share(self.limit) * BURST_SECONDS,
            Limit::OnDemandMax { units } => units,
        }
    }

    /// Applies a changed limit (UpdateTable) at once: the total credit is
    /// kept (clamped to the new caps) and spread over the new partitions.
    pub fn reconfigure(&mut self, limit: Limit, now: f64) {
        if self.limit == limit {
            return;
        }
        self.refill(now);
        let total: f64 = self.balance.iter().sum();
        self.limit = limit;
        let n = Self::partition_count(limit);
        let cap = self.cap();
        let each = (total / n as f64).min(cap);
        self.balance = vec![each; n];
        self.ceiling = vec![self.kind.partition_ceiling(); n];
    }

    /// Adds the credit earned since the last call.
    pub fn refill(&mut self, now: f64) {
        let elapsed = (now - self.last).max(0.0);
        self.last = self.last.max(now);
        if elapsed == 0.0 {
            return;
        }
        let share = Self::share(self.limit);
        let cap = self.cap();
        for b in &mut self.balance {
            *b = (*b + share * elapsed).min(cap);
        }
        let ceiling = self.kind.partition_ceiling();
        for c in &mut self.ceiling {
            *c = (*c + ceiling * elapsed).min(ceiling);
        }
    }

    fn index(&self, partition: Option<u32>) -> Option<usize> {
        partition
            .map(|p| p as usize)
            .filter(|&p| p < self.balance.len())
    }

    /// Decides whether a request touching `partition` (None: unknown or
    /// every partition) may run now.
    pub fn admit(&mut self, partition: Option<u32>, now: f64) -> Result<(), Denial> {
        self.refill(now);
        let positive = |b: &f64| b.max(0.0);
        if let Limit::OnDemandMax { .. } = self.limit {
            return if self.balance.iter().any(|&b| b > 0.0) {
                Ok(())
            } else {
                Err(Denial::OnDemandMax)
            };
        }
        let Some(p) = self.index(partition) else {
            let total: f64 = self.balance.iter().map(positive).sum();
            return if total > 0.0 {
                Ok(())
            } else {
                Err(Denial::Provisioned)
            };
        };
        // The physical ceiling holds whatever credit there is.
        if self.ceiling[p] <= 0.0 {
            return Err(Denial::KeyRange);
        }
        if self.balance[p] > 0.0 {
            return Ok(());
        }
        // Adaptive capacity: borrow the siblings' unused credit.
        let spare: f64 = self
            .balance
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != p)
            .map(|(_, b)| positive(b))
            .sum();
        if spare <= 0.0 {
            return Err(Denial::Provisioned);
        }
        Ok(())
    }

    /// Charges `units` (negative: a refund) to `partition` (None: spread
    /// evenly). A charge beyond the partition's own credit is taken from
    /// the siblings' unused credit, largest first (adaptive capacity); what
    /// no one covers stays as the partition's debt.
    pub fn charge(&mut self, partition: Option<u32>, units: f64, now: f64) {
        if !units.is_finite() || units == 0.0 {
            return;
        }
        self.refill(now);
        let Some(p) = self.index(partition) else {
            let each = units / self.balance.len() as f64;
            for (b, c) in self.balance.iter_mut().zip(&mut self.ceiling) {
                *b -= each;
                *c -= each;
            }
            return;
        };
        self.ceiling[p] -= units;
        if units < 0.0 {
            self.balance[p] = (self.balance[p] - units).min(self.cap());
            return;
        }
        let own = self.balance[p].max(0.0).min(units);
        self.balance[p] -= own;
        let mut rest = units - own;
        if rest > 0.0 && matches!(self.limit, Limit::Provisioned { .. }) {
            let mut order: Vec<usize> = (0..self.balance.len()).filter(|&i| i != p).collect();
            order.sort_by(|a, b| self.balance[*b].total_cmp(&self.balance[*a]));
            for i in order {
                if rest <= 0.0 {
                    break;
                }
                let take = self.balance[i].max(0.0).min(rest);
                self.balance[i] -= take;
                rest -= take;
            }
        }
        self.balance[p] -= rest;
    }

    /// The credit of every partition.
    #[cfg(test)]
    pub fn balances(&self) -> &[f64] {
        &self.balance
    }
}

/// The bucket sets of every limited resource.
#[derive(Debug, Default)]
pub struct Buckets {
    resources: HashMap<ResourceKey, Resource>,
}

impl Buckets {
    /// Returns the resource for `key` with `limit` applied (created on first
    /// use, reconfigured when the limit changed).
    pub fn resource(&mut self, key: &ResourceKey, limit: Limit, now: f64) -> &mut Resource {
        let kind = key.kind;
        let r = self
            .resources
            .entry(key.clone())
            .or_insert_with(|| Resource::new(limit, kind, now));
        r.reconfigure(limit, now);
        r
    }

    /// Returns the resource for `key` if it is limited.
    pub fn get_mut(&mut self, key: &ResourceKey) -> Option<&mut Resource> {
        self.resources.get_mut(key)
    }

    /// Forgets a resource that is no longer limited (billing mode changed,
    /// maximum removed, index deleted).
    pub fn remove(&mut self, key: &ResourceKey) {
        self.resources.remove(key);
    }

    /// The keys of every resource of `table`.
    pub fn keys_of(&self, table: &str) -> Vec<ResourceKey> {
        self.resources
            .keys()
            .filter(|k| k.table == table)
            .cloned()
            .collect()
    }

    /// Forgets every resource of `table` except the incarnation `keep`.
    pub fn retain_table(&mut self, table: &str, keep: Option<&str>) {
        self.resources
            .retain(|k, _| k.table != table || Some(k.table_id.as_str()) == keep);
    }
}

/// A plain token bucket: `rate` per second, holding at most `burst`.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: f64,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token; false when none is left.
    pub fn try_take(&mut self, now: f64) -> bool {
        let elapsed = (now - self.last).max(0.0);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + self.rate * elapsed).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisioned(units: f64, partitions: u32) -> Limit {
        Limit::Provisioned { units, partitions }
    }

    /// Admits and charges one unit at a time at `now`; returns how many ran.
    fn drain(r: &mut Resource, partition: Option<u32>, now: f64, max: usize) -> usize {
        let mut n = 0;
        while n < max && r.admit(partition, now).is_ok() {
            r.charge(partition, 1.0, now);
            n += 1;
        }
        n
    }

    /// A resource whose partitions hold `credit` each.
    fn with_credit(limit: Limit, kind: Kind, credit: f64) -> Resource {
        let mut r = Resource::new(limit, kind, 0.0);
        r.balance.iter_mut().for_each(|b| *b = credit);
        r
    }

    #[test]
    fn a_new_partition_starts_with_a_full_burst_bank() {
        let r = Resource::new(provisioned(10.0, 2), Kind::Write, 0.0);
        assert_eq!(r.balances(), &[1500.0, 1500.0]);
    }

    #[test]
    fn an_empty_partition_refills_at_its_share() {
        let mut r = with_credit(provisioned(10.0, 1), Kind::Write, 0.0);
        assert_eq!(r.admit(Some(0), 0.0), Err(Denial::Provisioned));
        // Half a second later, 5 units.
        assert_eq!(drain(&mut r, Some(0), 0.5, 100), 5);
    }

    #[test]
    fn unused_capacity_is_banked_up_to_300_seconds() {
        let mut r = with_credit(provisioned(10.0, 1), Kind::Write, 0.0);
        // 1000 seconds idle: the bank holds 300 s * 10 = 3000, no more,
        // spent at most 1000 WCU per second (the partition ceiling), while
        // 10 more units a second are earned.
        assert_eq!(drain(&mut r, Some(0), 1000.0, 10_000), 1000);
        let rest: usize = (1..=3)
            .map(|s| drain(&mut r, Some(0), 1000.0 + f64::from(s), 10_000))
            .sum();
        assert_eq!(1000 + rest, 3000 + 30);
    }

    #[test]
    fn a_large_charge_leaves_a_debt_that_blocks_until_repaid() {
        let mut r = with_credit(provisioned(10.0, 1), Kind::Write, 10.0);
        assert!(r.admit(Some(0), 0.0).is_ok());
        r.charge(Some(0), 40.0, 0.0);
        assert!(r.admit(Some(0), 2.9).is_err());
        assert!(r.admit(Some(0), 3.1).is_ok());
    }

    #[test]
    fn refunds_restore_credit() {
        let mut r = with_credit(provisioned(10.0, 1), Kind::Write, 10.0);
        r.charge(Some(0), 10.0, 0.0);
        assert!(r.admit(Some(0), 0.0).is_err());
        r.charge(Some(0), -1.0, 0.0);
        assert!(r.admit(Some(0), 0.0).is_ok());
    }

    #[test]
    fn a_hot_partition_borrows_unused_capacity_of_its_siblings() {
        // 40 units over 4 partitions, 10 units of credit each.
        let mut r = with_credit(provisioned(40.0, 4), Kind::Write, 10.0);
        assert_eq!(drain(&mut r, Some(2), 0.0, 1000), 40);
        assert_eq!(r.admit(Some(2), 0.0), Err(Denial::Provisioned));
        assert!(r.balances().iter().all(|b| *b <= 0.0));
        // The table as a whole never exceeds its capacity.
        assert_eq!(drain(&mut r, Some(1), 0.0, 1000), 0);
    }

    #[test]
    fn borrowing_stops_at_the_partition_ceiling() {
        // 4000 WCU over 2 partitions with a big bank: partition 0 may use
        // its siblings' credit, but not more than 1000 WCU per second.
        let mut r = Resource::new(provisioned(4000.0, 2), Kind::Write, 0.0);
        r.refill(10.0);
        let mut used = 0;
        while used < 5000 && r.admit(Some(0), 10.0).is_ok() {
            r.charge(Some(0), 100.0, 10.0);
            used += 100;
        }
        assert_eq!(used, 1000);
        assert_eq!(r.admit(Some(0), 10.0), Err(Denial::KeyRange));
        assert!(r.admit(Some(1), 10.0).is_ok());
    }

    #[test]
    fn reconfiguring_keeps_credit_and_applies_the_new_rate() {
        let mut r = with_credit(provisioned(10.0, 1), Kind::Write, 10.0);
        assert_eq!(drain(&mut r, Some(0), 0.0, 100), 10);
        r.reconfigure(provisioned(100.0, 1), 0.0);
        assert_eq!(drain(&mut r, Some(0), 1.0, 1000), 100);
        // Split into 4 partitions: credit spread, each earns 25 per second.
        r.reconfigure(provisioned(100.0, 4), 1.0);
        assert_eq!(drain(&mut r, Some(3), 2.0, 1000), 100);
    }

    #[test]
    fn on_demand_maximum_has_no_burst() {
        let mut r = Resource::new(Limit::OnDemandMax { units: 5.0 }, Kind::Read, 0.0);
        assert_eq!(drain(&mut r, Some(7), 100.0, 100), 5);
        assert_eq!(r.admit(None, 100.0), Err(Denial::OnDemandMax));
    }

    #[test]
    fn unknown_partition_spreads_the_charge() {
        let mut r = with_credit(provisioned(20.0, 2), Kind::Read, 10.0);
        r.charge(None, 20.0, 0.0);
        assert_eq!(r.balances(), &[0.0, 0.0]);
        assert_eq!(r.admit(None, 0.0), Err(Denial::Provisioned));
    }

    #[test]
    fn rate_limiter_refills() {
        let mut l = RateLimiter::new(2.0, 2.0, 0.0);
        assert!(l.try_take(0.0));
        assert!(l.try_take(0.0));
        assert!(!l.try_take(0.0));
        assert!(l.try_take(0.5));
    }
}
