//! Secondary index write amplification.
//!
//! A base-table write that changes an index entry consumes write units on
//! the index too, computed from the item before and after the write (the
//! storage outcome) and the index definitions:
//!
//! - the item enters the index (new has the index key, old had not): one
//!   write of the new entry;
//! - the item leaves the index: one write (a delete) of the old entry;
//! - the index key value changes: two writes (delete the old entry, put the
//!   new one);
//! - the key is the same but a projected attribute changed: one write of the
//!   larger entry;
//! - nothing projected changed: no write.
//!
//! Each write costs 1 unit per started KB of the index entry (the projected
//! item), doubled inside a transaction. Local secondary indexes follow the
//! same rules, but their units are the table's (an LSI shares the table's
//! throughput, as in DynamoDB): they are charged to the table's bucket and
//! counted in the table's metrics, and only the response's INDEXES
//! breakdown names them (`LocalSecondaryIndexes`).
//!
//! The charges are observed by [`MeteredBackend`], a pass-through wrapper
//! of the API's backend that sees every write's outcome, and recorded into
//! the request's usage (see [`super::record_index_write`]).

use std::time::Duration;

use partita_expr::SortKeyCondition;
use partita_model::schema::{IndexDefinition, IndexState};
use partita_model::value::item_size;
use partita_model::{AttributeValue, Item, TableDefinition};
use partita_storage::index::{is_indexed, project};
use partita_storage::keys::{partition_hash, range_index};
use partita_storage::{
    ChangePage, StorageError, StreamInfo, TransactionFailure, Visit, WriteCommand, WriteOutcome,
};

use crate::backend::{Backend, BoxFuture, OnceOutcome, TableChange};

/// One index write charge: the index, its units and the partition of the
/// entry's key (global indexes; a local index's units are the table's).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexCharge {
    pub table: String,
    pub index: String,
    pub units: f64,
    pub partition: Option<u32>,
    /// A local secondary index.
    pub local: bool,
}

/// Returns the index write charges of a write from `old` to `new` on the
/// table `def` (`factor` 2 inside a transaction).
pub fn index_write_charges(
    def: &TableDefinition,
    old: Option<&Item>,
    new: Option<&Item>,
    factor: f64,
) -> Vec<IndexCharge> {
    let mut out = Vec::new();
    let global = def.global_indexes.iter().map(|i| (i, false));
    let local = def.local_indexes.iter().map(|i| (i, true));
    for (index, is_local) in global.chain(local) {
        let old_entry = old
            .filter(|i| is_indexed(index, i))
            .map(|i| project(&def.key_schema, index, i));
        let new_entry = new
            .filter(|i| is_indexed(index, i))
            .map(|i| project(&def.key_schema, index, i));
        let units = |e: &Item| super::write_estimate(item_size(e));
        let (writes, entry_for_partition) = match (&old_entry, &new_entry) {
            (None, None) => continue,
            (None, Some(n)) => (units(n), n),
            (Some(o), None) => (units(o), o),
            (Some(o), Some(n)) => {
                if same_key(index, o, n) {
                    if o == n {
                        continue;
                    }
                    (super::write_estimate(item_size(o).max(item_size(n))), n)
                } else {
                    (units(o) + units(n), n)
                }
            }
        };
        let count = index
            .throughput
            .as_ref()
            .map(super::index_partitions)
            .unwrap_or(1);
        let partition = entry_for_partition
            .get(&index.key_schema.hash.name)
            .and_then(|v| partition_hash(v).ok())
            .map(|h| range_index(h, count))
            .filter(|_| !is_local);
        out.push(IndexCharge {
            table: def.name.clone(),
            index: index.name.clone(),
            units: writes * factor,
            partition,
            local: is_local,
        });
    }
    out
}

fn same_key(index: &IndexDefinition, a: &Item, b: &Item) -> bool {
    index
        .key_schema
        .attributes()
        .all(|k| a.get(&k.name) == b.get(&k.name))
}

/// The API's backend with index write charges observed (see the module
/// docs). Every method forwards to the wrapped backend; a method added to
/// [`Backend`] must be forwarded here too.
pub struct MeteredBackend {
    inner: std::sync::Arc<dyn Backend>,
}

impl MeteredBackend {
    pub fn new(inner: std::sync::Arc<dyn Backend>) -> MeteredBackend {
        MeteredBackend { inner }
    }

    fn observe(&self, table: &str, outcome: &WriteOutcome, factor: f64) {
        if outcome.old.is_none() && outcome.new.is_none() {
            return;
        }
        let inner = &self.inner;
        super::record_index_writes(
            table,
            |def| index_write_charges(def, outcome.old.as_ref(), outcome.new.as_ref(), factor),
            || inner.table(table).ok(),
        );
    }
}

impl Backend for MeteredBackend {
    fn create_table(&self, def: TableDefinition) -> Result<(), StorageError> {
        self.inner.create_table(def)
    }
    fn create_global_index(
        &self,
        table: &str,
        index: IndexDefinition,
    ) -> Result<TableDefinition, StorageError> {
        self.inner.create_global_index(table, index)
    }
    fn delete_global_index(
        &self,
        table: &str,
        index: &str,
    ) -> Result<TableDefinition, StorageError> {
        self.inner.delete_global_index(table, index)
    }
    fn index_state(&self, table: &str, index: &str) -> Result<IndexState, StorageError> {
        self.inner.index_state(table, index)
    }
    fn index_stats(&self, table: &str, index: &str) -> Result<(u64, u64), StorageError> {
        self.inner.index_stats(table, index)
    }
    fn wait_for_index_delivery(
        &self,
        table: &str,
        timeout: Duration,
    ) -> Result<bool, StorageError> {
        self.inner.wait_for_index_delivery(table, timeout)
    }
    fn delete_table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        self.inner.delete_table(name)
    }
    fn table(&self, name: &str) -> Result<TableDefinition, StorageError> {
        self.inner.table(name)
    }
    fn list_tables(&self) -> Vec<String> {
        self.inner.list_tables()
    }
    fn update_table_dyn(
        &self,
        name: &str,
        change: TableChange<'_>,
    ) -> Result<TableDefinition, StorageError> {
        self.inner.update_table_dyn(name, change)
    }
    fn table_stats(&self, name: &str) -> Result<(u64, u64), StorageError> {
        self.inner.table_stats(name)
    }
    fn write<'a>(
        &'a self,
        table: &'a str,
        command: WriteCommand,
    ) -> BoxFuture<'a, Result<WriteOutcome, StorageError>> {
        Box::pin(async move {
            let result = self.inner.write(table, command).await;
            if let Ok(outcome) = &result {
                self.observe(table, outcome, 1.0);
            }
            result
        })
    }
    fn write_many(
        &self,
        commands: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Vec<Result<WriteOutcome, StorageError>>> {
        Box::pin(async move {
            let tables: Vec<String> = commands.iter().map(|(t, _)| t.clone()).collect();
            let results = self.inner.write_many(commands).await;
            for (table, result) in tables.iter().zip(&results) {
                if let Ok(outcome) = result {
                    self.observe(table, outcome, 1.0);
                }
            }
            results
        })
    }
    fn transact_write(
        &self,
        actions: Vec<(String, WriteCommand)>,
    ) -> BoxFuture<'_, Result<Vec<WriteOutcome>, TransactionFailure>> {
        Box::pin(async move {
            let tables: Vec<String> = actions.iter().map(|(t, _)| t.clone()).collect();
            let result = self.inner.transact_write(actions).await;
            if let Ok(outcomes) = &result {
                for (table, outcome) in tables.iter().zip(outcomes) {
                    self.observe(table, outcome, 2.0);
                }
            }
            result
        })
    }
    fn transact_write_once(
        &self,
        actions: Vec<(String, WriteCommand)>,
        token: String,
        fingerprint: u64,
    ) -> BoxFuture<'_, Result<OnceOutcome, TransactionFailure>> {
        Box::pin(async move {
            let tables: Vec<String> = actions.iter().map(|(t, _)| t.clone()).collect();
            let result = self
                .inner
                .transact_write_once(actions, token, fingerprint)
                .await;
            if let Ok(OnceOutcome::Committed(outcomes)) = &result {
                for (table, outcome) in tables.iter().zip(outcomes) {
                    self.observe(table, outcome, 2.0);
                }
            }
            result
        })
    }
    fn transact_get(&self, gets: &[(String, Item)]) -> Result<Vec<Option<Item>>, StorageError> {
        self.inner.transact_get(gets)
    }
    fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, StorageError> {
        self.inner.get(table, key)
    }
    fn get_with(
        &self,
        table: &str,
        key: &Item,
        consistent: bool,
    ) -> Result<Option<Item>, StorageError> {
        self.inner.get_with(table, key, consistent)
    }
    fn query(
        &self,
        table: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.inner
            .query(table, hash_value, sort, forward, exclusive_start, visit)
    }
    fn scan(
        &self,
        table: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.inner
            .scan(table, segment, total_segments, exclusive_start, visit)
    }
    fn query_index(
        &self,
        table: &str,
        index: &str,
        hash_value: &AttributeValue,
        sort: Option<&SortKeyCondition>,
        forward: bool,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.inner.query_index(
            table,
            index,
            hash_value,
            sort,
            forward,
            exclusive_start,
            visit,
        )
    }
    fn scan_index(
        &self,
        table: &str,
        index: &str,
        segment: u32,
        total_segments: u32,
        exclusive_start: Option<&Item>,
        visit: &mut dyn FnMut(Item) -> Visit,
    ) -> Result<(), StorageError> {
        self.inner.scan_index(
            table,
            index,
            segment,
            total_segments,
            exclusive_start,
            visit,
        )
    }
    fn streams(&self, table: &str) -> Result<(String, Vec<StreamInfo>), StorageError> {
        self.inner.streams(table)
    }
    fn read_changes(
        &self,
        table: &str,
        partition: u32,
        from: u64,
        until: Option<u64>,
        limit: usize,
    ) -> Result<ChangePage, StorageError> {
        self.inner
            .read_changes(table, partition, from, until, limit)
    }
    fn secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        self.inner.secret(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::schema::{BillingMode, Projection};
    use partita_model::{KeyAttribute, KeySchema, ScalarType};

    fn key(name: &str) -> KeyAttribute {
        KeyAttribute {
            name: name.into(),
            scalar_type: ScalarType::S,
        }
    }

    fn def() -> TableDefinition {
        let gsi = |name: &str, hash: &str, projection| IndexDefinition {
            name: name.into(),
            key_schema: KeySchema {
                hash: key(hash),
                range: None,
            },
            projection,
            throughput: None,
        };
        TableDefinition {
            revision: 0,
            name: "t".into(),
            table_id: "id".into(),
            key_schema: KeySchema {
                hash: key("pk"),
                range: None,
            },
            attribute_definitions: vec![],
            billing_mode: BillingMode::PayPerRequest,
            throughput: None,
            created_at_ms: 0,
            pay_per_request_since_ms: None,
            stream: None,
            stream_label: None,
            ttl: None,
            tags: vec![],
            table_class: None,
            deletion_protection: false,
            local_indexes: vec![],
            global_indexes: vec![
                gsi("by_g", "g", Projection::KeysOnly),
                gsi("by_h", "h", Projection::All),
            ],
            partitions: 1,
            on_demand: None,
        }
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect()
    }

    fn units(charges: &[IndexCharge], index: &str) -> f64 {
        charges
            .iter()
            .filter(|c| c.index == index)
            .map(|c| c.units)
            .sum()
    }

    #[test]
    fn put_into_a_sparse_index_charges_only_indexes_holding_the_item() {
        let d = def();
        let new = item(&[("pk", "a"), ("g", "x")]);
        let c = index_write_charges(&d, None, Some(&new), 1.0);
        assert_eq!(units(&c, "by_g"), 1.0);
        assert_eq!(units(&c, "by_h"), 0.0);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn changing_the_index_key_costs_a_delete_and_a_put() {
        let d = def();
        let old = item(&[("pk", "a"), ("g", "x")]);
        let new = item(&[("pk", "a"), ("g", "y")]);
        assert_eq!(
            units(
                &index_write_charges(&d, Some(&old), Some(&new), 1.0),
                "by_g"
            ),
            2.0
        );
        // Inside a transaction, twice that.
        assert_eq!(
            units(
                &index_write_charges(&d, Some(&old), Some(&new), 2.0),
                "by_g"
            ),
            4.0
        );
    }

    #[test]
    fn unprojected_changes_cost_nothing_and_projected_ones_one_write() {
        let d = def();
        let old = item(&[("pk", "a"), ("g", "x"), ("h", "1"), ("other", "1")]);
        let new = item(&[("pk", "a"), ("g", "x"), ("h", "1"), ("other", "2")]);
        let c = index_write_charges(&d, Some(&old), Some(&new), 1.0);
        // by_g projects keys only: untouched. by_h projects all: one write.
        assert_eq!(units(&c, "by_g"), 0.0);
        assert_eq!(units(&c, "by_h"), 1.0);
    }

    #[test]
    fn a_delete_removes_the_entry_with_one_write_per_kb_of_it() {
        let d = def();
        let big = "x".repeat(3000);
        let old = item(&[("pk", "a"), ("h", "1"), ("data", big.as_str())]);
        let c = index_write_charges(&d, Some(&old), None, 1.0);
        assert_eq!(units(&c, "by_h"), 3.0);
    }

    #[test]
    fn local_indexes_are_charged_like_global_ones_and_marked_local() {
        let mut d = def();
        d.key_schema.range = Some(key("sk"));
        d.local_indexes.push(IndexDefinition {
            name: "by_l".into(),
            key_schema: KeySchema {
                hash: key("pk"),
                range: Some(key("l")),
            },
            projection: Projection::All,
            throughput: None,
        });
        let old = item(&[("pk", "a"), ("sk", "1"), ("l", "x")]);
        let new = item(&[("pk", "a"), ("sk", "1"), ("l", "y")]);
        let c = index_write_charges(&d, Some(&old), Some(&new), 2.0);
        let local: Vec<&IndexCharge> = c.iter().filter(|c| c.local).collect();
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].index, "by_l");
        assert_eq!(local[0].units, 4.0, "a key change is two writes, doubled");
        assert_eq!(local[0].partition, None, "the table's units");
        assert!(c.iter().filter(|c| !c.local).all(|c| c.index != "by_l"));
    }
}
