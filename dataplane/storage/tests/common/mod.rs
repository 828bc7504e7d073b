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
