//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use partita_model::{
    AttributeValue, BillingMode, Item, KeyAttribute, KeySchema, Number, ScalarType, TableDefinition,
};

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(v).expect("valid number"))
}

pub fn item(attrs: &[(&str, AttributeValue)]) -> Item {
    attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub fn table_def(name: &str, sort: Option<ScalarType>, partitions: u32) -> TableDefinition {
    TableDefinition {
        revision: 0,
        name: name.into(),
        table_id: format!("{name}-{}", std::process::id()),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                scalar_type: ScalarType::S,
            },
            range: sort.map(|t| KeyAttribute {
                name: "sk".into(),
                scalar_type: t,
            }),
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
        global_indexes: vec![],
        partitions,
        on_demand: None,
    }
}

/// Runs a Query to completion and returns the items.
pub fn query_all(
    store: &partita_storage::Store,
    table: &str,
    hash: &AttributeValue,
    sort: Option<&partita_expr::SortKeyCondition>,
    forward: bool,
) -> Vec<Item> {
    let mut out = Vec::new();
    store
        .query(table, hash, sort, forward, None, &mut |i| {
            out.push(i);
            partita_storage::Visit::Continue
        })
        .expect("query");
    out
}

/// Runs a Scan segment to completion and returns the items.
pub fn scan_all(
    store: &partita_storage::Store,
    table: &str,
    segment: u32,
    total: u32,
) -> Vec<Item> {
    let mut out = Vec::new();
    store
        .scan(table, segment, total, None, &mut |i| {
            out.push(i);
            partita_storage::Visit::Continue
        })
        .expect("scan");
    out
}

/// A secondary index definition: partition key `hash`, optional sort key.
pub fn index_def(
    name: &str,
    hash: (&str, ScalarType),
    range: Option<(&str, ScalarType)>,
    projection: partita_model::Projection,
    throughput: Option<partita_model::ProvisionedThroughput>,
) -> partita_model::IndexDefinition {
    partita_model::IndexDefinition {
        name: name.into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: hash.0.into(),
                scalar_type: hash.1,
            },
            range: range.map(|(n, t)| KeyAttribute {
                name: n.into(),
                scalar_type: t,
            }),
        },
        projection,
        throughput,
    }
}

/// Runs an index Query to completion and returns the items.
pub fn index_query_all(
    store: &partita_storage::Store,
    table: &str,
    index: &str,
    hash: &AttributeValue,
    sort: Option<&partita_expr::SortKeyCondition>,
    forward: bool,
) -> Vec<Item> {
    let mut out = Vec::new();
    store
        .query_index(table, index, hash, sort, forward, None, &mut |i| {
            out.push(i);
            partita_storage::Visit::Continue
        })
        .expect("index query");
    out
}

/// Runs every segment of an index Scan to completion and returns the items.
pub fn index_scan_all(
    store: &partita_storage::Store,
    table: &str,
    index: &str,
    total: u32,
) -> Vec<Item> {
    let mut out = Vec::new();
    for segment in 0..total {
        store
            .scan_index(table, index, segment, total, None, &mut |i| {
                out.push(i);
                partita_storage::Visit::Continue
            })
            .expect("index scan");
    }
    out
}

/// Waits until the table's global index updates are delivered.
pub fn wait_delivered(store: &partita_storage::Store, table: &str) {
    assert!(
        store
            .wait_for_index_delivery(table, std::time::Duration::from_secs(30))
            .expect("table exists"),
        "global index delivery did not catch up"
    );
    assert_eq!(store.gsi_pending(table).unwrap(), 0);
}
