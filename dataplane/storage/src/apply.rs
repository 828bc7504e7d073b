//! The partition state machine: the one deterministic function that turns a
//! write command and the current state of its item into the new state and the
//! response.
//!
//! [`apply_command`] is pure — current item in, outcome out, no I/O, no clock,
//! no randomness — so the same command gives the same answer wherever it is
//! applied: by the standalone group-commit writer today, by every replica
//! applying a Raft log tomorrow. Conditions are evaluated here, at apply time,
//! against the state that earlier commands left. [`Effect`] then translates an
//! outcome into engine mutations and statistics deltas.
//!
//! [`plan_write`] extends the outcome with everything else the write changes
//! (DESIGN.md §3: one atomic batch): the entries of the table's local
//! indexes, the deltas of its global indexes (recorded in the partition's
//! outbox, delivered later), and the size of the item's collection. It also
//! rejects index key values of the wrong type and writes that would push an
//! item collection over its limit. [`plan_backfill`] is the command that adds
//! an existing item to a new global index. Both are pure as well.

use partita_model::limits::MAX_ITEM_SIZE;
use partita_model::schema::IndexDefinition;
use partita_model::value::item_size;
use partita_model::{Item, KeySchema};

use crate::index::{check_index_keys, index_entry, IndexEntry, INDEX_ENTRY_OVERHEAD};
use crate::index_keys::IndexKind;
use crate::{StorageError, WriteCommand, WriteOutcome};

/// Applies `command` to the item it addresses, whose current state is
/// `current`. Returns the item before and after (`new: None` means the item
/// is absent afterwards). A failed condition or a failed evaluation returns
/// an error and changes nothing.
pub fn apply_command(
    schema: &KeySchema,
    current: Option<&Item>,
    command: &WriteCommand,
) -> Result<WriteOutcome, StorageError> {
    let condition = match command {
        WriteCommand::Put { condition, .. }
        | WriteCommand::Delete { condition, .. }
        | WriteCommand::Update { condition, .. } => condition.as_ref(),
        WriteCommand::ConditionCheck { condition, .. } => Some(condition),
    };
    if let Some(condition) = condition {
        if !condition.evaluate(current)? {
            return Err(StorageError::ConditionalCheckFailed {
                old: current.map(|item| Box::new(item.clone())),
            });
        }
    }
    let new = match command {
        // A condition check reads, writes nothing and reports nothing.
        WriteCommand::ConditionCheck { .. } => return Ok(WriteOutcome::default()),
        WriteCommand::Put { item, .. } => Some(item.clone()),
        WriteCommand::Delete { .. } => None,
        WriteCommand::Update { key, update, .. } => {
            let mut item = match current {
                Some(item) => item.clone(),
                None => schema.extract_key(key).ok_or_else(|| {
                    StorageError::InvalidKey("the key lacks a key attribute".into())
                })?,
            };
            update.apply(&mut item)?;
            for attr in schema.attributes() {
                if item.get(&attr.name) != key.get(&attr.name) {
                    return Err(StorageError::InvalidKey(format!(
                        "the update changed the key attribute {}",
                        attr.name
                    )));
                }
            }
            Some(item)
        }
    };
    if let Some(item) = &new {
        if item_size(item) > MAX_ITEM_SIZE {
            return Err(StorageError::ItemTooLarge);
        }
    }
    Ok(WriteOutcome {
        old: current.cloned(),
        new,
        item_collection_size: None,
    })
}

/// The secondary indexes a write maintains.
pub struct IndexSet<'a> {
    /// The table's key schema.
    pub table: &'a KeySchema,
    /// The local indexes, in definition order (the position names the index).
    pub local: Vec<&'a IndexDefinition>,
    /// The maintained (creating or active) global indexes with their ids.
    pub global: Vec<(u64, &'a IndexDefinition)>,
}

/// The item collection of the written item: its size before the write and
/// the most it may grow to.
#[derive(Clone, Copy, Debug)]
pub struct Collection {
    pub size: u64,
    pub limit: u64,
}

/// A change of one local index entry, written in the same batch.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalChange {
    /// Position of the local index in the table definition.
    pub index: usize,
    /// The old entry's key, when it must be removed (the key changed or the
    /// item left the index).
    pub delete: Option<Vec<u8>>,
    pub put: Option<IndexEntry>,
    /// Change of the index's (entry count, entry bytes).
    pub items: i64,
    pub bytes: i64,
}

/// A change of one global index entry, recorded in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalDelta {
    pub index_id: u64,
    /// The old entry's key, when it must be removed.
    pub delete: Option<Vec<u8>>,
    pub put: Option<IndexEntry>,
}

/// Everything one write changes.
#[derive(Clone, Debug, Default)]
pub struct WritePlan {
    pub outcome: WriteOutcome,
    pub local: Vec<LocalChange>,
    pub global: Vec<GlobalDelta>,
}

fn entries_of(
    indexes: &IndexSet<'_>,
    def: &IndexDefinition,
    kind: IndexKind,
    outcome: &WriteOutcome,
) -> Result<(Option<IndexEntry>, Option<IndexEntry>), StorageError> {
    // An item whose index key values break the index's rules has no entry:
    // a stored item may predate a rule (or come from another region), and
    // its entry key could exceed what the engine stores.
    let entry = |item: &Option<Item>| -> Result<Option<IndexEntry>, StorageError> {
        match item {
            Some(item) if check_index_keys(def, item).is_ok() => {
                index_entry(indexes.table, def, kind, item)
            }
            _ => Ok(None),
        }
    };
    Ok((entry(&outcome.old)?, entry(&outcome.new)?))
}

/// Removes the old entry unless the new one replaces it under the same key;
/// returns `None` when nothing changes at all.
fn entry_change(
    old: Option<IndexEntry>,
    new: Option<IndexEntry>,
) -> Option<(Option<Vec<u8>>, Option<IndexEntry>)> {
    if old == new {
        return None;
    }
    let delete = match (&old, &new) {
        (Some(o), Some(n)) if o.key == n.key => None,
        (Some(o), _) => Some(o.key.bytes.clone()),
        (None, _) => None,
    };
    Some((delete, new))
}

/// What a write does with an item whose index key values break an index's
/// rules (wrong type, empty, over the size limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKeyRule {
    /// Refuse the write (a client's write, as DynamoDB).
    Refuse,
    /// Store the item and leave it out of that index (a change another
    /// region already accepted: refusing it would stop replication, as
    /// backfill leaves such items out, too).
    LeaveOut,
}

/// Applies `command` like [`apply_command`] and plans every index and
/// item-collection change it causes. With [`IndexKeyRule::Refuse`], fails,
/// changing nothing, when an index key attribute of the resulting item has
/// the wrong type or an empty value (`IndexKeyInvalid`) or is over the size
/// limit (`IndexKeyTooLarge`). Fails when the write grows the item's
/// collection past its limit (`ItemCollectionSizeLimitExceeded`).
/// `collection` is given for tables with local indexes; the outcome then
/// reports the new size.
pub fn plan_write(
    indexes: &IndexSet<'_>,
    current: Option<&Item>,
    command: &WriteCommand,
    collection: Option<Collection>,
    rule: IndexKeyRule,
) -> Result<WritePlan, StorageError> {
    let check = |item: &Item| -> Result<(), StorageError> {
        if rule == IndexKeyRule::LeaveOut {
            return Ok(());
        }
        for def in &indexes.local {
            check_index_keys(def, item)?;
        }
        for (_, def) in &indexes.global {
            check_index_keys(def, item)?;
        }
        Ok(())
    };
    // A Put's item is known up front: its index keys are request validation,
    // which precedes the condition (as in DynamoDB).
    if let WriteCommand::Put { item, .. } = command {
        check(item)?;
    }
    let mut outcome = apply_command(indexes.table, current, command)?;
    if let (WriteCommand::Update { .. }, Some(new)) = (command, &outcome.new) {
        check(new)?;
    }
    let mut plan = WritePlan::default();
    let mut collection_delta = stats_delta(&outcome).1;
    for (position, def) in indexes.local.iter().enumerate() {
        let (old, new) = entries_of(indexes, def, IndexKind::Local, &outcome)?;
        let size = |e: &Option<IndexEntry>| e.as_ref().map_or(0, |e| e.size() as i64);
        let count = |e: &Option<IndexEntry>| i64::from(e.is_some());
        let (items, bytes) = (count(&new) - count(&old), size(&new) - size(&old));
        collection_delta += bytes + items * INDEX_ENTRY_OVERHEAD as i64;
        if let Some((delete, put)) = entry_change(old, new) {
            plan.local.push(LocalChange {
                index: position,
                delete,
                put,
                items,
                bytes,
            });
        }
    }
    if let Some(collection) = collection {
        let new_size =
            u64::try_from(i128::from(collection.size) + i128::from(collection_delta)).unwrap_or(0);
        if new_size > collection.limit && new_size > collection.size {
            return Err(StorageError::ItemCollectionSizeLimitExceeded);
        }
        outcome.item_collection_size = Some(new_size);
    }
    for (id, def) in &indexes.global {
        let (old, new) = entries_of(indexes, def, IndexKind::Global, &outcome)?;
        if let Some((delete, put)) = entry_change(old, new) {
            plan.global.push(GlobalDelta {
                index_id: *id,
                delete,
                put,
            });
        }
    }
    plan.outcome = outcome;
    Ok(plan)
}

/// Plans the backfill of one existing item into global index `index_id`:
/// the entry of the item as it is now, or nothing when the item is gone,
/// lacks the index key (sparse) or holds an invalid index key value (such
/// items stay out of the index, as in DynamoDB).
pub fn plan_backfill(
    table: &KeySchema,
    index_id: u64,
    def: &IndexDefinition,
    current: Option<&Item>,
) -> Option<GlobalDelta> {
    let item = current?;
    check_index_keys(def, item).ok()?;
    let entry = index_entry(table, def, IndexKind::Global, item).ok()??;
    Some(GlobalDelta {
        index_id,
        delete: None,
        put: Some(entry),
    })
}

/// What an applied outcome changes in the engine and in the statistics.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing to write (a delete of an absent item).
    None,
    /// Store this item.
    Put,
    /// Remove the item.
    Delete,
}

impl Effect {
    /// Returns the engine effect of an outcome.
    pub fn of(outcome: &WriteOutcome) -> Effect {
        match (&outcome.old, &outcome.new) {
            (_, Some(_)) => Effect::Put,
            (Some(_), None) => Effect::Delete,
            (None, None) => Effect::None,
        }
    }
}

/// Returns the change in (item count, item bytes) an outcome causes.
pub fn stats_delta(outcome: &WriteOutcome) -> (i64, i64) {
    let size = |item: &Option<Item>| item.as_ref().map_or(0, |i| item_size(i) as i64);
    let count = |item: &Option<Item>| i64::from(item.is_some());
    (
        count(&outcome.new) - count(&outcome.old),
        size(&outcome.new) - size(&outcome.old),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_expr::{
        CompareOp, Condition, Operand, Path, PathElement, SetValue, UpdateExpression,
    };
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

    fn item(pk: &str, attrs: &[(&str, AttributeValue)]) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S(pk.into()));
        for (k, v) in attrs {
            item.insert((*k).into(), v.clone());
        }
        item
    }

    fn path(name: &str) -> Path {
        Path(vec![PathElement::Attribute(name.into())])
    }

    #[test]
    fn put_without_condition_replaces() {
        let old = item("a", &[("x", AttributeValue::Bool(true))]);
        let new = item("a", &[]);
        let cmd = WriteCommand::Put {
            item: new.clone(),
            condition: None,
        };
        let out = apply_command(&schema(), Some(&old), &cmd).unwrap();
        assert_eq!(out.old, Some(old));
        assert_eq!(out.new, Some(new));
        assert_eq!(Effect::of(&out), Effect::Put);
        assert_eq!(stats_delta(&out), (0, -2));
    }

    #[test]
    fn delete_of_absent_item_changes_nothing() {
        let cmd = WriteCommand::Delete {
            key: item("a", &[]),
            condition: None,
        };
        let out = apply_command(&schema(), None, &cmd).unwrap();
        assert_eq!(Effect::of(&out), Effect::None);
        assert_eq!(stats_delta(&out), (0, 0));
    }

    #[test]
    fn oversized_put_is_rejected() {
        let big = item("a", &[("x", AttributeValue::S("x".repeat(MAX_ITEM_SIZE)))]);
        let cmd = WriteCommand::Put {
            item: big,
            condition: None,
        };
        assert!(matches!(
            apply_command(&schema(), None, &cmd),
            Err(StorageError::ItemTooLarge)
        ));
    }

    #[test]
    fn failed_condition_carries_the_current_item() {
        let current = item("a", &[]);
        let cond = Condition::AttributeNotExists(path("pk"));
        let cmd = WriteCommand::Put {
            item: item("a", &[]),
            condition: Some(cond),
        };
        match apply_command(&schema(), Some(&current), &cmd) {
            Err(StorageError::ConditionalCheckFailed { old }) => {
                assert_eq!(old.as_deref(), Some(&current))
            }
            other => panic!("unexpected {other:?}"),
        }
        let cmd = WriteCommand::Delete {
            key: item("a", &[]),
            condition: Some(Condition::AttributeExists(path("pk"))),
        };
        assert!(matches!(
            apply_command(&schema(), None, &cmd),
            Err(StorageError::ConditionalCheckFailed { old: None })
        ));
    }

    #[test]
    fn update_of_missing_item_starts_from_the_key() {
        let one = AttributeValue::N(Number::from_i64(1));
        let update = UpdateExpression {
            set: vec![(path("n"), SetValue::Operand(Operand::Value(one.clone())))],
            ..Default::default()
        };
        let cmd = WriteCommand::Update {
            key: item("a", &[]),
            update,
            condition: None,
        };
        let out = apply_command(&schema(), None, &cmd).unwrap();
        assert_eq!(out.old, None);
        assert_eq!(out.new, Some(item("a", &[("n", one)])));
    }

    #[test]
    fn update_may_not_change_the_key() {
        let update = UpdateExpression {
            set: vec![(
                path("pk"),
                SetValue::Operand(Operand::Value(AttributeValue::S("b".into()))),
            )],
            ..Default::default()
        };
        let cmd = WriteCommand::Update {
            key: item("a", &[]),
            update,
            condition: None,
        };
        assert!(matches!(
            apply_command(&schema(), Some(&item("a", &[])), &cmd),
            Err(StorageError::InvalidKey(_))
        ));
    }

    #[test]
    fn condition_sees_the_current_item() {
        let current = item("a", &[("v", AttributeValue::N(Number::from_i64(5)))]);
        let cond = Condition::Compare(
            Operand::Path(path("v")),
            CompareOp::Eq,
            Operand::Value(AttributeValue::N(Number::from_i64(5))),
        );
        let cmd = WriteCommand::Delete {
            key: item("a", &[]),
            condition: Some(cond),
        };
        let out = apply_command(&schema(), Some(&current), &cmd).unwrap();
        assert_eq!(Effect::of(&out), Effect::Delete);
        assert_eq!(stats_delta(&out).0, -1);
    }
}
