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

use partita_model::limits::MAX_ITEM_SIZE;
use partita_model::value::item_size;
use partita_model::{Item, KeySchema};

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
    };
    if let Some(condition) = condition {
        if !condition.evaluate(current)? {
            return Err(StorageError::ConditionalCheckFailed {
                old: current.map(|item| Box::new(item.clone())),
            });
        }
    }
    let new = match command {
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
