//! Applying an UpdateExpression to an item.
//!
//! Every right-hand side is computed from the item as it was before the
//! update, and list indexes refer to the original lists: SET actions run
//! first, then ADD, then DELETE, then REMOVE (highest indexes first, so
//! removing `a[1]` and `a[3]` removes the original elements). The item is
//! only changed when the whole update succeeds.

use std::collections::BTreeSet;

use partita_model::{AttributeValue, Item, Number};

use crate::ast::{Operand, Path, PathElement, SetValue, UpdateExpression};
use crate::eval::size_of;
use crate::path::cmp_elements;
use crate::EvalError;

impl UpdateExpression {
    /// Applies the update to `item` in place. On error `item` is unchanged.
    pub fn apply(&self, item: &mut Item) -> Result<(), EvalError> {
        let values = self
            .set
            .iter()
            .map(|(_, v)| evaluate(v, item))
            .collect::<Result<Vec<_>, _>>()?;
        let mut work = item.clone();
        for ((path, _), value) in self.set.iter().zip(values) {
            set_path(&mut work, path, value)?;
        }
        for (path, value) in &self.add {
            add_path(&mut work, path, value)?;
        }
        for (path, value) in &self.delete {
            delete_path(&mut work, path, value)?;
        }
        let mut removes: Vec<&Path> = self.remove.iter().collect();
        removes.sort_by(|a, b| cmp_elements(&b.0, &a.0));
        for path in removes {
            remove_path(&mut work, path)?;
        }
        *item = work;
        Ok(())
    }

    /// Returns every path the update writes or removes, in expression order
    /// per clause (SET, REMOVE, ADD, DELETE).
    pub fn target_paths(&self) -> impl Iterator<Item = &Path> {
        self.set
            .iter()
            .map(|(p, _)| p)
            .chain(self.remove.iter())
            .chain(self.add.iter().map(|(p, _)| p))
            .chain(self.delete.iter().map(|(p, _)| p))
    }

    /// Returns the distinct top-level attribute names the update touches
    /// (for the API layer's "Cannot update attribute pk" check).
    pub fn top_level_attributes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for name in self.target_paths().filter_map(Path::top_level) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// Computes a SET right-hand side against the original item.
fn evaluate(value: &SetValue, item: &Item) -> Result<AttributeValue, EvalError> {
    match value {
        SetValue::Operand(Operand::Value(v)) => Ok(v.clone()),
        SetValue::Operand(Operand::Path(p)) => p
            .get(item)
            .cloned()
            .ok_or_else(EvalError::missing_attribute),
        SetValue::Operand(Operand::Size(p)) => {
            let v = p.get(item).ok_or_else(EvalError::missing_attribute)?;
            let n = size_of(v).ok_or_else(EvalError::incorrect_data_type)?;
            Ok(AttributeValue::N(Number::from_i64(
                i64::try_from(n).unwrap_or(i64::MAX),
            )))
        }
        SetValue::IfNotExists(p, fallback) => match p.get(item) {
            Some(v) => Ok(v.clone()),
            None => evaluate(fallback, item),
        },
        SetValue::ListAppend(a, b) => match (evaluate(a, item)?, evaluate(b, item)?) {
            (AttributeValue::L(mut x), AttributeValue::L(y)) => {
                x.extend(y);
                Ok(AttributeValue::L(x))
            }
            _ => Err(EvalError::incorrect_data_type()),
        },
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            match (evaluate(a, item)?, evaluate(b, item)?) {
                (AttributeValue::N(x), AttributeValue::N(y)) => {
                    let r = if matches!(value, SetValue::Plus(..)) {
                        x.checked_add(&y)
                    } else {
                        x.checked_sub(&y)
                    };
                    r.map(AttributeValue::N)
                        .map_err(|e| EvalError::new(e.to_string()))
                }
                _ => Err(EvalError::incorrect_data_type()),
            }
        }
    }
}

/// The container holding the last element of a path.
enum Parent<'v> {
    Item(&'v mut Item),
    Value(&'v mut AttributeValue),
}

/// Walks to the parent of the path's last element. The parent must exist and
/// be a container of the kind the last element addresses.
fn parent_of<'v>(
    item: &'v mut Item,
    path: &'v Path,
) -> Result<(Parent<'v>, &'v PathElement), EvalError> {
    let Some((last, init)) = path.0.split_last() else {
        return Err(EvalError::invalid_update_path());
    };
    let mut elems = init.iter();
    let Some(first) = elems.next() else {
        return match last {
            PathElement::Attribute(_) => Ok((Parent::Item(item), last)),
            PathElement::Index(_) => Err(EvalError::invalid_update_path()),
        };
    };
    let mut current = match first {
        PathElement::Attribute(name) => item
            .get_mut(name)
            .ok_or_else(EvalError::invalid_update_path)?,
        PathElement::Index(_) => return Err(EvalError::invalid_update_path()),
    };
    for elem in elems {
        current = match (elem, current) {
            (PathElement::Attribute(name), AttributeValue::M(m)) => {
                m.get_mut(name).ok_or_else(EvalError::invalid_update_path)?
            }
            (PathElement::Index(i), AttributeValue::L(l)) => {
                l.get_mut(*i).ok_or_else(EvalError::invalid_update_path)?
            }
            _ => return Err(EvalError::invalid_update_path()),
        };
    }
    match (last, &*current) {
        (PathElement::Attribute(_), AttributeValue::M(_))
        | (PathElement::Index(_), AttributeValue::L(_)) => Ok((Parent::Value(current), last)),
        _ => Err(EvalError::invalid_update_path()),
    }
}

/// Returns the slot the path addresses, if it holds a value.
fn slot<'v>(parent: &'v mut Parent<'_>, last: &PathElement) -> Option<&'v mut AttributeValue> {
    match (parent, last) {
        (Parent::Item(item), PathElement::Attribute(name)) => item.get_mut(name),
        (Parent::Value(AttributeValue::M(m)), PathElement::Attribute(name)) => m.get_mut(name),
        (Parent::Value(AttributeValue::L(l)), PathElement::Index(i)) => l.get_mut(*i),
        _ => None,
    }
}

/// Stores `value` at the path: replaces, inserts a map key, or (for a list
/// index at or past the end) appends.
fn store(parent: Parent<'_>, last: &PathElement, value: AttributeValue) -> Result<(), EvalError> {
    match (parent, last) {
        (Parent::Item(item), PathElement::Attribute(name)) => {
            item.insert(name.clone(), value);
        }
        (Parent::Value(AttributeValue::M(m)), PathElement::Attribute(name)) => {
            m.insert(name.clone(), value);
        }
        (Parent::Value(AttributeValue::L(l)), PathElement::Index(i)) => match l.get_mut(*i) {
            Some(slot) => *slot = value,
            None => l.push(value),
        },
        _ => return Err(EvalError::invalid_update_path()),
    }
    Ok(())
}

fn set_path(item: &mut Item, path: &Path, value: AttributeValue) -> Result<(), EvalError> {
    let (parent, last) = parent_of(item, path)?;
    store(parent, last, value)
}

/// Appends the elements of `from` that `into` lacks, keeping order. Number
/// sets compare numerically because `Number`'s order is numeric.
fn union<T: Clone + Ord>(into: &mut Vec<T>, from: &[T]) {
    let mut present: BTreeSet<T> = into.iter().cloned().collect();
    for x in from {
        if present.insert(x.clone()) {
            into.push(x.clone());
        }
    }
}

/// Removes the elements of `remove` from `from`.
fn difference<T: Ord>(from: &mut Vec<T>, remove: &[T]) {
    let gone: BTreeSet<&T> = remove.iter().collect();
    from.retain(|e| !gone.contains(e));
}

fn add_path(item: &mut Item, path: &Path, value: &AttributeValue) -> Result<(), EvalError> {
    let (mut parent, last) = parent_of(item, path)?;
    let Some(current) = slot(&mut parent, last) else {
        return match value {
            AttributeValue::N(_)
            | AttributeValue::Ss(_)
            | AttributeValue::Ns(_)
            | AttributeValue::Bs(_) => store(parent, last, value.clone()),
            _ => Err(EvalError::incorrect_data_type()),
        };
    };
    match (current, value) {
        (AttributeValue::N(x), AttributeValue::N(y)) => {
            *x = x
                .checked_add(y)
                .map_err(|e| EvalError::new(e.to_string()))?;
        }
        (AttributeValue::Ss(x), AttributeValue::Ss(y)) => union(x, y),
        (AttributeValue::Ns(x), AttributeValue::Ns(y)) => union(x, y),
        (AttributeValue::Bs(x), AttributeValue::Bs(y)) => union(x, y),
        _ => return Err(EvalError::incorrect_data_type()),
    }
    Ok(())
}

fn delete_path(item: &mut Item, path: &Path, value: &AttributeValue) -> Result<(), EvalError> {
    let (mut parent, last) = parent_of(item, path)?;
    let Some(current) = slot(&mut parent, last) else {
        return match value {
            AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_) => Ok(()),
            _ => Err(EvalError::incorrect_data_type()),
        };
    };
    let now_empty = match (current, value) {
        (AttributeValue::Ss(x), AttributeValue::Ss(y)) => {
            difference(x, y);
            x.is_empty()
        }
        (AttributeValue::Ns(x), AttributeValue::Ns(y)) => {
            difference(x, y);
            x.is_empty()
        }
        (AttributeValue::Bs(x), AttributeValue::Bs(y)) => {
            difference(x, y);
            x.is_empty()
        }
        _ => return Err(EvalError::incorrect_data_type()),
    };
    if now_empty {
        take(parent, last);
    }
    Ok(())
}

/// Removes the value at the path from its parent (list elements shift).
fn take(parent: Parent<'_>, last: &PathElement) {
    match (parent, last) {
        (Parent::Item(item), PathElement::Attribute(name)) => {
            item.remove(name);
        }
        (Parent::Value(AttributeValue::M(m)), PathElement::Attribute(name)) => {
            m.remove(name);
        }
        (Parent::Value(AttributeValue::L(l)), PathElement::Index(i)) if *i < l.len() => {
            l.remove(*i);
        }
        _ => {}
    }
}

fn remove_path(item: &mut Item, path: &Path) -> Result<(), EvalError> {
    let (parent, last) = parent_of(item, path)?;
    take(parent, last);
    Ok(())
}
