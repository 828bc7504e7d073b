//! Condition evaluation with DynamoDB's semantics.
//!
//! - `=` and `IN` need both operands present and equal: same type, numbers
//!   numerically, sets regardless of order, lists and maps element-wise.
//! - `<>` is the negation of `=`: true when the types differ or an operand
//!   is missing.
//! - `<`, `<=`, `>`, `>=`, `BETWEEN` compare only S (UTF-8 bytes), N
//!   (numerically) and B (bytes) of one type; anything else is false.
//! - `size` is the UTF-8 length of S, the length of B, and the element count
//!   of sets, lists and maps; other types (and missing attributes) have no
//!   size, which makes the enclosing comparison false.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use partita_model::{AttributeValue, Item, Number};

use crate::ast::{CompareOp, Condition, Operand};
use crate::EvalError;

/// Orders two scalars of the same comparable type (S, N or B).
pub fn compare_scalars(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::N(x), AttributeValue::N(y)) => Some(x.cmp(y)),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Set equality regardless of order (sets hold no duplicates, but stay
/// correct if they do). O(n log n).
fn same_members<T: Ord>(a: &[T], b: &[T]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let x: BTreeSet<&T> = a.iter().collect();
    let y: BTreeSet<&T> = b.iter().collect();
    x == y
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    a.cmp(b) == Ordering::Equal
}

/// DynamoDB equality of two values.
pub fn values_equal(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => x == y,
        (AttributeValue::N(x), AttributeValue::N(y)) => numbers_equal(x, y),
        (AttributeValue::B(x), AttributeValue::B(y)) => x == y,
        (AttributeValue::Bool(x), AttributeValue::Bool(y)) => x == y,
        (AttributeValue::Null, AttributeValue::Null) => true,
        (AttributeValue::Ss(x), AttributeValue::Ss(y)) => same_members(x, y),
        (AttributeValue::Ns(x), AttributeValue::Ns(y)) => same_members(x, y),
        (AttributeValue::Bs(x), AttributeValue::Bs(y)) => same_members(x, y),
        (AttributeValue::L(x), AttributeValue::L(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (AttributeValue::M(x), AttributeValue::M(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => false,
    }
}

/// Returns DynamoDB's `size()` of a value, if the type has one.
pub fn size_of(v: &AttributeValue) -> Option<usize> {
    match v {
        AttributeValue::S(s) => Some(s.len()),
        AttributeValue::B(b) => Some(b.len()),
        AttributeValue::Ss(s) => Some(s.len()),
        AttributeValue::Ns(s) => Some(s.len()),
        AttributeValue::Bs(s) => Some(s.len()),
        AttributeValue::L(l) => Some(l.len()),
        AttributeValue::M(m) => Some(m.len()),
        AttributeValue::N(_) | AttributeValue::Bool(_) | AttributeValue::Null => None,
    }
}

fn size_number(n: usize) -> AttributeValue {
    AttributeValue::N(Number::from_i64(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// Returns an operand's value for `item`, if it has one.
pub fn operand_value<'v>(op: &'v Operand, item: &'v Item) -> Option<Cow<'v, AttributeValue>> {
    match op {
        Operand::Path(p) => p.get(item).map(Cow::Borrowed),
        Operand::Value(v) => Some(Cow::Borrowed(v)),
        Operand::Size(p) => p
            .get(item)
            .and_then(size_of)
            .map(|n| Cow::Owned(size_number(n))),
    }
}

const VALID_TYPES: [&str; 10] = ["B", "NULL", "SS", "BOOL", "L", "BS", "N", "NS", "S", "M"];

fn begins_with(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => x.starts_with(y.as_str()),
        (AttributeValue::B(x), AttributeValue::B(y)) => x.starts_with(y),
        _ => false,
    }
}

fn contains(a: &AttributeValue, b: &AttributeValue) -> bool {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => x.contains(y.as_str()),
        (AttributeValue::B(x), AttributeValue::B(y)) => {
            y.is_empty() || x.windows(y.len()).any(|w| w == y.as_slice())
        }
        (AttributeValue::Ss(x), AttributeValue::S(y)) => x.contains(y),
        (AttributeValue::Ns(x), AttributeValue::N(y)) => x.iter().any(|n| numbers_equal(n, y)),
        (AttributeValue::Bs(x), AttributeValue::B(y)) => x.contains(y),
        (AttributeValue::L(x), y) => x.iter().any(|e| values_equal(e, y)),
        _ => false,
    }
}

impl Condition {
    /// Evaluates the condition against an item (`None`: the item does not exist).
    pub fn evaluate(&self, item: Option<&Item>) -> Result<bool, EvalError> {
        let empty = Item::new();
        self.eval_in(item.unwrap_or(&empty))
    }

    fn eval_in(&self, item: &Item) -> Result<bool, EvalError> {
        Ok(match self {
            Condition::And(a, b) => a.eval_in(item)? && b.eval_in(item)?,
            Condition::Or(a, b) => a.eval_in(item)? || b.eval_in(item)?,
            Condition::Not(a) => !a.eval_in(item)?,
            Condition::Compare(a, op, b) => {
                let (a, b) = (operand_value(a, item), operand_value(b, item));
                match op {
                    CompareOp::Eq => matches!((&a, &b), (Some(x), Some(y)) if values_equal(x, y)),
                    CompareOp::Ne => !matches!((&a, &b), (Some(x), Some(y)) if values_equal(x, y)),
                    _ => {
                        let ord = match (&a, &b) {
                            (Some(x), Some(y)) => compare_scalars(x, y),
                            _ => None,
                        };
                        match ord {
                            None => false,
                            Some(o) => match op {
                                CompareOp::Lt => o == Ordering::Less,
                                CompareOp::Le => o != Ordering::Greater,
                                CompareOp::Gt => o == Ordering::Greater,
                                _ => o != Ordering::Less,
                            },
                        }
                    }
                }
            }
            Condition::Between(a, lo, hi) => {
                match (
                    operand_value(a, item),
                    operand_value(lo, item),
                    operand_value(hi, item),
                ) {
                    (Some(x), Some(l), Some(h)) => {
                        matches!(
                            compare_scalars(&x, &l),
                            Some(Ordering::Greater | Ordering::Equal)
                        ) && matches!(
                            compare_scalars(&x, &h),
                            Some(Ordering::Less | Ordering::Equal)
                        )
                    }
                    _ => false,
                }
            }
            Condition::In(a, list) => match operand_value(a, item) {
                Some(x) => list
                    .iter()
                    .any(|o| operand_value(o, item).is_some_and(|y| values_equal(&x, &y))),
                None => false,
            },
            Condition::AttributeExists(p) => p.get(item).is_some(),
            Condition::AttributeNotExists(p) => p.get(item).is_none(),
            Condition::AttributeType(p, ty) => {
                let wanted = match operand_value(ty, item).as_deref() {
                    Some(AttributeValue::S(s)) if VALID_TYPES.contains(&s.as_str()) => s.clone(),
                    Some(AttributeValue::S(s)) => {
                        return Err(EvalError::new(format!(
                            "Invalid ConditionExpression: Invalid attribute type name found; type: {s}, valid types: {{{}}}",
                            VALID_TYPES.join(",")
                        )))
                    }
                    Some(other) => {
                        return Err(EvalError::new(format!(
                            "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: attribute_type, operand type: {}",
                            other.type_name()
                        )))
                    }
                    None => return Ok(false),
                };
                p.get(item).is_some_and(|v| v.type_name() == wanted)
            }
            Condition::BeginsWith(a, b) => match (operand_value(a, item), operand_value(b, item)) {
                (Some(x), Some(y)) => begins_with(&x, &y),
                _ => false,
            },
            Condition::Contains(a, b) => match (operand_value(a, item), operand_value(b, item)) {
                (Some(x), Some(y)) => contains(&x, &y),
                _ => false,
            },
        })
    }
}
