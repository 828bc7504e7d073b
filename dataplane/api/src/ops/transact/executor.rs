//! The transaction executor shared by TransactWriteItems, TransactGetItems
//! and PartiQL's ExecuteTransaction: it takes already-decoded actions and
//! does everything after request decoding.
//!
//! Write transactions, in DynamoDB's order:
//! 1. every table is looked up, in request order (ResourceNotFoundException);
//! 2. key values that are empty or too long, and index key values of a
//!    Put over their size limit, are request errors
//!    (ValidationException); a key that does not match the table's schema,
//!    or an Update of a key attribute, is a cancellation reason
//!    (`ValidationError`) — the other actions' conditions are still
//!    evaluated for their reasons, and nothing is written;
//! 3. two actions on one item are a ValidationException;
//! 4. a ClientRequestToken already used by the same request is answered from
//!    its record (see `tokens`), by a different one refused — in this
//!    process's cache, then, when the backend keeps records of its own (the
//!    cluster router, replicated), by the backend at apply time;
//! 5. the store applies the actions atomically; a refused transaction
//!    becomes a TransactionCanceledException with one reason per action.

use partita_expr::{Condition, Path, PathElement, ProjectionExpression, UpdateExpression};
use partita_model::value::item_size;
use partita_model::{Item, KeySchema, TableDefinition};
use partita_storage::{StorageError, WriteCommand, WriteOutcome};
use serde_json::{json, Map as JsonMap, Value};

use super::tokens::{Claim, Recorded};
use crate::backend::OnceOutcome;
use crate::codec;
use crate::error::{ApiError, ErrorKind};
use crate::ops::common::{
    load_table, read_units, validate_item_key, validate_key, write_units, INVALID,
};
use crate::Api;

/// The reason message of a lookup key that does not match the schema.
const SCHEMA_MISMATCH: &str = "The provided key element does not match the schema";

/// The ValidationException for two actions on one item.
pub(crate) fn duplicate_items() -> ApiError {
    ApiError::validation("Transaction request cannot include multiple operations on one item")
}

/// One decoded write action.
#[derive(Clone, Debug)]
pub(crate) enum TxWrite {
    Put {
        item: Item,
        condition: Option<Condition>,
    },
    Update {
        key: Item,
        update: UpdateExpression,
        condition: Option<Condition>,
    },
    Delete {
        key: Item,
        condition: Option<Condition>,
    },
    ConditionCheck {
        key: Item,
        condition: Condition,
    },
}

/// One action of a write transaction.
#[derive(Clone, Debug)]
pub(crate) struct TxAction {
    /// The table's name (ARNs already resolved).
    pub table: String,
    pub write: TxWrite,
    /// ReturnValuesOnConditionCheckFailure=ALL_OLD: a failed condition's
    /// reason carries the item.
    pub return_old_on_failure: bool,
}

/// A committed (or replayed) write transaction.
#[derive(Clone, Debug)]
pub(crate) struct TxCommitted {
    /// One per action, in order; empty when `replayed`.
    pub outcomes: Vec<WriteOutcome>,
    /// Consumed capacity per table, in order of first appearance: write
    /// units (2 per KB per action) for a commit, read units for a replay.
    pub capacity: Vec<(String, f64)>,
    /// True when a repeated ClientRequestToken was answered from its record
    /// and nothing was applied now.
    pub replayed: bool,
}

/// The result of a read transaction.
#[derive(Clone, Debug)]
pub(crate) struct TxRead {
    /// One per get, in order, projected; `None` when absent.
    pub items: Vec<Option<Item>>,
    /// Read units per table (2 per 4 KB per item), in order of first
    /// appearance.
    pub capacity: Vec<(String, f64)>,
}

/// Why one action of a cancelled transaction failed.
#[derive(Clone, Debug)]
pub(crate) enum Reason {
    None,
    ConditionalCheckFailed { item: Option<Item> },
    Other { code: &'static str, message: String },
}

impl Reason {
    fn validation(message: impl Into<String>) -> Reason {
        Reason::Other {
            code: "ValidationError",
            message: message.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Reason::None => "None",
            Reason::ConditionalCheckFailed { .. } => "ConditionalCheckFailed",
            Reason::Other { code, .. } => code,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Reason::None => json!({"Code": "None"}),
            Reason::ConditionalCheckFailed { item } => {
                let mut out = JsonMap::new();
                out.insert("Code".into(), json!("ConditionalCheckFailed"));
                out.insert("Message".into(), json!("The conditional request failed"));
                if let Some(item) = item {
                    out.insert("Item".into(), codec::item_to_json(item));
                }
                Value::Object(out)
            }
            Reason::Other { code, message } => json!({"Code": code, "Message": message}),
        }
    }
}

/// The TransactionCanceledException for `reasons` (one per action).
pub(crate) fn cancelled(reasons: &[Reason]) -> ApiError {
    let codes: Vec<&str> = reasons.iter().map(Reason::code).collect();
    let mut err = ApiError::new(
        ErrorKind::TransactionCanceled,
        format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
    );
    let mut extra = JsonMap::new();
    extra.insert(
        "CancellationReasons".into(),
        Value::Array(reasons.iter().map(Reason::to_json).collect()),
    );
    err.extra = Some(extra);
    err
}

/// Returns true when `key` holds exactly the schema's key attributes with
/// the declared types.
fn key_matches(schema: &KeySchema, key: &Item) -> bool {
    key.len() == schema.attributes().count()
        && schema
            .attributes()
            .all(|a| key.get(&a.name).is_some_and(|v| a.scalar_type.matches(v)))
}

/// Returns the reason message when a Put's item lacks a key attribute or
/// holds one of the wrong type.
fn item_key_mismatch(schema: &KeySchema, item: &Item) -> Option<String> {
    for attr in schema.attributes() {
        match item.get(&attr.name) {
            None => {
                return Some(format!(
                    "{INVALID}Missing the key {} in the item",
                    attr.name
                ))
            }
            Some(value) if !attr.scalar_type.matches(value) => {
                return Some(format!(
                    "{INVALID}Type mismatch for key {} expected: {} actual: {}",
                    attr.name,
                    attr.scalar_type.as_str(),
                    value.type_name()
                ))
            }
            Some(_) => {}
        }
    }
    None
}

/// Returns the first key attribute an update writes or removes.
fn updated_key_attribute<'a>(schema: &KeySchema, update: &'a UpdateExpression) -> Option<&'a str> {
    let paths = update
        .set
        .iter()
        .map(|(p, _)| p)
        .chain(update.remove.iter())
        .chain(update.add.iter().map(|(p, _)| p))
        .chain(update.delete.iter().map(|(p, _)| p));
    paths
        .filter_map(|p: &Path| match p.0.first() {
            Some(PathElement::Attribute(name)) => Some(name.as_str()),
            _ => None,
        })
        .find(|name| schema.is_key_attribute(name))
}

/// Checks one action's key against its table: `Err` for request errors
/// (empty or oversized key values), `Ok(Some(message))` for a cancellation
/// reason.
fn check_action_key(schema: &KeySchema, write: &TxWrite) -> Result<Option<String>, ApiError> {
    match write {
        TxWrite::Put { item, .. } => match item_key_mismatch(schema, item) {
            Some(message) => Ok(Some(message)),
            None => validate_item_key(schema, item).map(|()| None),
        },
        TxWrite::Update { key, update, .. } => {
            if !key_matches(schema, key) {
                return Ok(Some(SCHEMA_MISMATCH.into()));
            }
            validate_key(schema, key)?;
            Ok(updated_key_attribute(schema, update).map(|name| {
                format!(
                    "{INVALID}Cannot update attribute {name}. This attribute is part of the key"
                )
            }))
        }
        TxWrite::Delete { key, .. } | TxWrite::ConditionCheck { key, .. } => {
            if !key_matches(schema, key) {
                return Ok(Some(SCHEMA_MISMATCH.into()));
            }
            validate_key(schema, key).map(|()| None)
        }
    }
}

/// Returns the primary key an action addresses (None for a key that does
/// not match the schema).
fn target_key(schema: &KeySchema, write: &TxWrite) -> Option<Item> {
    match write {
        TxWrite::Put { item, .. } => schema.extract_key(item),
        TxWrite::Update { key, .. }
        | TxWrite::Delete { key, .. }
        | TxWrite::ConditionCheck { key, .. } => Some(key.clone()),
    }
}

fn has_duplicates(targets: &[(&str, Item)]) -> bool {
    targets
        .iter()
        .enumerate()
        .any(|(i, t)| targets[..i].contains(t))
}

fn to_command(write: TxWrite) -> WriteCommand {
    match write {
        TxWrite::Put { item, condition } => WriteCommand::Put { item, condition },
        TxWrite::Update {
            key,
            update,
            condition,
        } => WriteCommand::Update {
            key,
            update,
            condition,
        },
        TxWrite::Delete { key, condition } => WriteCommand::Delete { key, condition },
        TxWrite::ConditionCheck { key, condition } => {
            WriteCommand::ConditionCheck { key, condition }
        }
    }
}

/// Adds `units` to `table`'s total, keeping first-appearance order.
fn add_units(totals: &mut Vec<(String, f64)>, table: &str, units: f64) {
    match totals.iter_mut().find(|(t, _)| t == table) {
        Some((_, total)) => *total += units,
        None => totals.push((table.to_owned(), units)),
    }
}

/// Maps a storage failure of one action to its cancellation reason, or to
/// the request's error when it is not the action's fault.
fn reason_of(err: StorageError, return_old: bool) -> Result<Reason, ApiError> {
    match err {
        StorageError::ConditionalCheckFailed { old } => Ok(Reason::ConditionalCheckFailed {
            item: if return_old { old.map(|b| *b) } else { None },
        }),
        StorageError::TableNotFound(_) => Err(ApiError::table_not_found()),
        StorageError::InvalidKey(_) => Ok(Reason::validation(SCHEMA_MISMATCH)),
        // The whole request cannot run here: a request error, not a reason.
        StorageError::Unsupported(message) => Err(ApiError::validation(message)),
        StorageError::TransactionConflict => Ok(Reason::Other {
            code: "TransactionConflict",
            message: crate::error::TRANSACTION_ONGOING.into(),
        }),
        other => {
            let mapped = ApiError::from(other);
            match mapped.kind {
                ErrorKind::Validation => Ok(Reason::validation(mapped.message)),
                ErrorKind::ItemCollectionSizeLimitExceeded => Ok(Reason::Other {
                    code: "ItemCollectionSizeLimitExceeded",
                    message: mapped.message,
                }),
                _ => Err(mapped),
            }
        }
    }
}

/// Evaluates the conditions of the actions that have no reason yet, writing
/// nothing (each becomes a ConditionCheck), and returns the cancellation of
/// the whole transaction.
async fn cancel_with(
    api: &Api,
    actions: &[TxAction],
    defs: &[TableDefinition],
    mut reasons: Vec<Option<Reason>>,
) -> ApiError {
    let mut checks = Vec::new();
    let mut positions = Vec::new();
    for (i, (action, def)) in actions.iter().zip(defs).enumerate() {
        if reasons[i].is_some() {
            continue;
        }
        let condition = match &action.write {
            TxWrite::Put { condition, .. }
            | TxWrite::Update { condition, .. }
            | TxWrite::Delete { condition, .. } => condition.as_ref(),
            TxWrite::ConditionCheck { condition, .. } => Some(condition),
        };
        if let (Some(condition), Some(key)) =
            (condition, target_key(&def.key_schema, &action.write))
        {
            checks.push((
                action.table.clone(),
                WriteCommand::ConditionCheck {
                    key,
                    condition: condition.clone(),
                },
            ));
            positions.push(i);
        }
    }
    if !checks.is_empty() {
        if let Err(failure) = api.store.transact_write(checks).await {
            for (position, reason) in positions.into_iter().zip(failure.reasons) {
                if let Some(StorageError::ConditionalCheckFailed { old }) = reason {
                    let return_old = actions[position].return_old_on_failure;
                    reasons[position] = Some(Reason::ConditionalCheckFailed {
                        item: if return_old { old.map(|b| *b) } else { None },
                    });
                }
            }
        }
    }
    let reasons: Vec<Reason> = reasons
        .into_iter()
        .map(|r| r.unwrap_or(Reason::None))
        .collect();
    cancelled(&reasons)
}

fn idempotent_mismatch() -> ApiError {
    ApiError::new(
        ErrorKind::IdempotentParameterMismatch,
        "DynamoDB rejected the request because you retried a request with a different payload but with an idempotent token that was already used.",
    )
}

/// Runs a write transaction of decoded actions (see the module docs for the
/// order of checks). `token` is the ClientRequestToken with a fingerprint of
/// the request it came with.
pub(crate) async fn run_write_transaction(
    api: &Api,
    actions: Vec<TxAction>,
    token: Option<(String, u64)>,
) -> Result<TxCommitted, ApiError> {
    let defs = actions
        .iter()
        .map(|a| load_table(api, &a.table))
        .collect::<Result<Vec<TableDefinition>, ApiError>>()?;
    let mut reasons: Vec<Option<Reason>> = Vec::with_capacity(actions.len());
    for (action, def) in actions.iter().zip(&defs) {
        reasons.push(check_action_key(&def.key_schema, &action.write)?.map(Reason::validation));
        // An index key value over its size limit in a Put refuses the whole
        // request (as DynamoDB Local does; a wrong index key type is a
        // cancellation reason, found when the store applies the action).
        if let TxWrite::Put { item, .. } = &action.write {
            for index in def.local_indexes.iter().chain(&def.global_indexes) {
                partita_storage::index::check_index_key_sizes(index, item)?;
            }
        }
    }
    if reasons.iter().any(Option::is_some) {
        return Err(cancel_with(api, &actions, &defs, reasons).await);
    }
    let targets: Vec<(&str, Item)> = actions
        .iter()
        .zip(&defs)
        .filter_map(|(a, d)| Some((a.table.as_str(), target_key(&d.key_schema, &a.write)?)))
        .collect();
    if has_duplicates(&targets) {
        return Err(duplicate_items());
    }
    let guard = match &token {
        None => None,
        Some((token, fingerprint)) => match api.transaction_tokens.claim(token, *fingerprint).await
        {
            Claim::Run(guard) => Some(guard),
            Claim::Replay(record) => {
                return Ok(TxCommitted {
                    outcomes: vec![WriteOutcome::default(); record.actions],
                    capacity: record.replay_capacity.clone(),
                    replayed: true,
                })
            }
            Claim::Mismatch => return Err(idempotent_mismatch()),
        },
    };
    let return_old: Vec<bool> = actions.iter().map(|a| a.return_old_on_failure).collect();
    let tables: Vec<String> = actions.iter().map(|a| a.table.clone()).collect();
    let commands = actions
        .into_iter()
        .map(|a| (a.table, to_command(a.write)))
        .collect();
    // The token also goes to the backend: a replicated one keeps its own
    // record, which survives gateway restarts and leader changes.
    let result = match token {
        Some((token, fingerprint)) => {
            api.store
                .transact_write_once(commands, token, fingerprint)
                .await
        }
        None => api
            .store
            .transact_write(commands)
            .await
            .map(OnceOutcome::Committed),
    };
    match result {
        Ok(OnceOutcome::Replayed(sizes)) => {
            let mut replay_capacity = Vec::new();
            for (table, size) in &sizes {
                let size = usize::try_from(*size).unwrap_or(usize::MAX);
                add_units(&mut replay_capacity, table, 2.0 * read_units(size, true));
            }
            if let Some(guard) = guard {
                guard.commit(Recorded {
                    actions: sizes.len(),
                    replay_capacity: replay_capacity.clone(),
                });
            }
            Ok(TxCommitted {
                outcomes: vec![WriteOutcome::default(); sizes.len()],
                capacity: replay_capacity,
                replayed: true,
            })
        }
        Ok(OnceOutcome::Mismatch) => Err(idempotent_mismatch()),
        Ok(OnceOutcome::Committed(outcomes)) => {
            let mut capacity = Vec::new();
            let mut replay_capacity = Vec::new();
            for (table, outcome) in tables.iter().zip(&outcomes) {
                let old = outcome.old.as_ref().map(item_size).unwrap_or(0);
                let new = outcome.new.as_ref().map(item_size).unwrap_or(0);
                add_units(&mut capacity, table, 2.0 * write_units(old.max(new)));
                add_units(&mut replay_capacity, table, 2.0 * read_units(new, true));
            }
            if let Some(guard) = guard {
                guard.commit(Recorded {
                    actions: outcomes.len(),
                    replay_capacity,
                });
            }
            Ok(TxCommitted {
                outcomes,
                capacity,
                replayed: false,
            })
        }
        Err(failure) => {
            let mut reasons = Vec::with_capacity(failure.reasons.len());
            for (reason, return_old) in failure.reasons.into_iter().zip(return_old) {
                reasons.push(match reason {
                    None => Reason::None,
                    Some(err) => reason_of(err, return_old)?,
                });
            }
            Err(cancelled(&reasons))
        }
    }
}

/// Runs a read transaction: every item from one snapshot, projected.
pub(crate) async fn run_get_transaction(
    api: &Api,
    gets: Vec<(String, Item, Option<ProjectionExpression>)>,
) -> Result<TxRead, ApiError> {
    let defs = gets
        .iter()
        .map(|(table, _, _)| load_table(api, table))
        .collect::<Result<Vec<TableDefinition>, ApiError>>()?;
    let mut reasons = Vec::with_capacity(gets.len());
    for ((_, key, _), def) in gets.iter().zip(&defs) {
        if key_matches(&def.key_schema, key) {
            validate_key(&def.key_schema, key)?;
            reasons.push(Reason::None);
        } else {
            reasons.push(Reason::validation(SCHEMA_MISMATCH));
        }
    }
    if reasons.iter().any(|r| !matches!(r, Reason::None)) {
        return Err(cancelled(&reasons));
    }
    let targets: Vec<(&str, Item)> = gets
        .iter()
        .map(|(table, key, _)| (table.as_str(), key.clone()))
        .collect();
    if has_duplicates(&targets) {
        return Err(duplicate_items());
    }
    let keys: Vec<(String, Item)> = gets
        .iter()
        .map(|(table, key, _)| (table.clone(), key.clone()))
        .collect();
    let found = match api.store.transact_get(&keys) {
        Ok(found) => found,
        // Items held by transactions in progress (cluster mode): cancelled
        // with a TransactionConflict reason per item, as DynamoDB's
        // TransactGetItems answers a conflict.
        Err(StorageError::TransactionConflict) => {
            let reasons: Vec<Reason> = keys
                .iter()
                .map(|_| Reason::Other {
                    code: "TransactionConflict",
                    message: crate::error::TRANSACTION_ONGOING.into(),
                })
                .collect();
            return Err(cancelled(&reasons));
        }
        Err(e) => return Err(e.into()),
    };
    let mut capacity = Vec::new();
    let mut items = Vec::with_capacity(found.len());
    for ((table, _, projection), item) in gets.iter().zip(found) {
        let size = item.as_ref().map(item_size).unwrap_or(0);
        add_units(&mut capacity, table, 2.0 * read_units(size, true));
        items.push(match (item, projection) {
            (Some(item), Some(p)) => Some(p.apply(&item)),
            (item, _) => item,
        });
    }
    Ok(TxRead { items, capacity })
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::{AttributeValue, KeyAttribute, Number, ScalarType};

    fn schema() -> KeySchema {
        KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                scalar_type: ScalarType::S,
            },
            range: None,
        }
    }

    fn key(v: AttributeValue) -> Item {
        [("pk".to_string(), v)].into_iter().collect()
    }

    #[test]
    fn cancellation_lists_every_reason_in_order() {
        let err = cancelled(&[
            Reason::None,
            Reason::ConditionalCheckFailed {
                item: Some(key(AttributeValue::S("a".into()))),
            },
            Reason::validation("bad"),
        ]);
        assert_eq!(err.kind, ErrorKind::TransactionCanceled);
        assert_eq!(
            err.message,
            "Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed, ValidationError]"
        );
        let body = err.to_body();
        assert_eq!(
            body["CancellationReasons"],
            json!([
                {"Code": "None"},
                {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
                 "Item": {"pk": {"S": "a"}}},
                {"Code": "ValidationError", "Message": "bad"},
            ])
        );
    }

    #[test]
    fn key_checks_split_request_errors_from_reasons() {
        let s = schema();
        let wrong = TxWrite::Delete {
            key: key(AttributeValue::N(Number::from_i64(5))),
            condition: None,
        };
        assert_eq!(
            check_action_key(&s, &wrong).unwrap().as_deref(),
            Some(SCHEMA_MISMATCH)
        );
        let put = TxWrite::Put {
            item: key(AttributeValue::N(Number::from_i64(5))),
            condition: None,
        };
        assert_eq!(
            check_action_key(&s, &put).unwrap().as_deref(),
            Some("One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N")
        );
        let empty = TxWrite::ConditionCheck {
            key: key(AttributeValue::S(String::new())),
            condition: Condition::AttributeExists(Path(vec![PathElement::Attribute("pk".into())])),
        };
        let err = check_action_key(&s, &empty).unwrap_err();
        assert_eq!(
            err.message,
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"
        );
        let ok = TxWrite::Delete {
            key: key(AttributeValue::S("a".into())),
            condition: None,
        };
        assert_eq!(check_action_key(&s, &ok).unwrap(), None);
    }

    #[test]
    fn storage_failures_map_to_reasons() {
        let old = key(AttributeValue::S("a".into()));
        let ccf = || StorageError::ConditionalCheckFailed {
            old: Some(Box::new(old.clone())),
        };
        assert!(matches!(
            reason_of(ccf(), true),
            Ok(Reason::ConditionalCheckFailed { item: Some(_) })
        ));
        assert!(matches!(
            reason_of(ccf(), false),
            Ok(Reason::ConditionalCheckFailed { item: None })
        ));
        assert!(matches!(
            reason_of(StorageError::ItemTooLarge, false),
            Ok(Reason::Other {
                code: "ValidationError",
                ..
            })
        ));
        assert!(matches!(
            reason_of(StorageError::TransactionConflict, false),
            Ok(Reason::Other {
                code: "TransactionConflict",
                ..
            })
        ));
        let engine = StorageError::Engine {
            operation: "commit",
            message: "disk".into(),
        };
        assert_eq!(
            reason_of(engine, false).unwrap_err().kind,
            ErrorKind::InternalServerError
        );
    }
}
