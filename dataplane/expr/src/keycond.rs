//! Query key conditions: from a resolved condition to the partition key
//! value and an optional sort key condition, with DynamoDB's messages.
//!
//! Accepted shape: `hash = :v` alone or ANDed with one sort key condition
//! (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `begins_with`), in either order and
//! with (non-redundant) parentheses. A value may stand on either side of a
//! comparison.

use std::cmp::Ordering;

use partita_model::AttributeValue;

use crate::ast::{CompareOp, Condition, KeyCondition, Operand, PathElement, SortKeyCondition};
use crate::eval::compare_scalars;
use crate::{ExprError, ExpressionKind};

fn invalid(message: &str) -> ExprError {
    ExpressionKind::KeyCondition.error(message)
}

fn invalid_operator(op: &str) -> ExprError {
    invalid(&format!(
        "Invalid operator used in KeyConditionExpression: {op}"
    ))
}

fn not_supported() -> ExprError {
    ExprError::new("Query key condition not supported")
}

/// Collects the AND-ed leaves, rejecting every operator a key condition
/// cannot use. Iterative, so long chains cannot overflow the stack.
fn leaves(cond: &Condition) -> Result<Vec<&Condition>, ExprError> {
    let mut out = Vec::new();
    let mut stack = vec![cond];
    while let Some(c) = stack.pop() {
        match c {
            Condition::And(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Condition::Or(..) => return Err(invalid_operator("OR")),
            Condition::Not(..) => return Err(invalid_operator("NOT")),
            Condition::In(..) => return Err(invalid_operator("IN")),
            Condition::Compare(_, CompareOp::Ne, _) => return Err(invalid_operator("<>")),
            Condition::AttributeExists(_) => return Err(invalid_operator("attribute_exists")),
            Condition::AttributeNotExists(_) => {
                return Err(invalid_operator("attribute_not_exists"))
            }
            Condition::AttributeType(..) => return Err(invalid_operator("attribute_type")),
            Condition::Contains(..) => return Err(invalid_operator("contains")),
            Condition::Compare(..) | Condition::Between(..) | Condition::BeginsWith(..) => {
                out.push(c)
            }
        }
    }
    Ok(out)
}

/// The key attribute a leaf constrains and its condition.
fn key_leaf(leaf: &Condition) -> Result<(&str, SortKeyCondition), ExprError> {
    fn attr(op: &Operand) -> Result<Option<&str>, ExprError> {
        match op {
            Operand::Path(p) => match p.0.as_slice() {
                [PathElement::Attribute(name)] => Ok(Some(name)),
                _ => Err(invalid(
                    "Nested attributes (with map or list dereferencing) are not supported in KeyConditionExpression",
                )),
            },
            Operand::Size(_) => Err(invalid_operator("size")),
            Operand::Value(_) => Ok(None),
        }
    }
    fn value(op: &Operand) -> Result<AttributeValue, ExprError> {
        match op {
            Operand::Value(v) => Ok(v.clone()),
            _ => Err(not_supported()),
        }
    }
    match leaf {
        Condition::Compare(a, op, b) => {
            let (name, v, op) = match (attr(a)?, attr(b)?) {
                (Some(name), None) => (name, value(b)?, *op),
                (None, Some(name)) => {
                    let flipped = match op {
                        CompareOp::Lt => CompareOp::Gt,
                        CompareOp::Le => CompareOp::Ge,
                        CompareOp::Gt => CompareOp::Lt,
                        CompareOp::Ge => CompareOp::Le,
                        other => *other,
                    };
                    (name, value(a)?, flipped)
                }
                _ => return Err(not_supported()),
            };
            let cond = match op {
                CompareOp::Eq => SortKeyCondition::Eq(v),
                CompareOp::Lt => SortKeyCondition::Lt(v),
                CompareOp::Le => SortKeyCondition::Le(v),
                CompareOp::Gt => SortKeyCondition::Gt(v),
                CompareOp::Ge => SortKeyCondition::Ge(v),
                CompareOp::Ne => return Err(invalid_operator("<>")),
            };
            Ok((name, cond))
        }
        Condition::Between(a, lo, hi) => {
            let name = attr(a)?.ok_or_else(not_supported)?;
            Ok((name, SortKeyCondition::Between(value(lo)?, value(hi)?)))
        }
        Condition::BeginsWith(a, b) => {
            let name = attr(a)?.ok_or_else(not_supported)?;
            Ok((name, SortKeyCondition::BeginsWith(value(b)?)))
        }
        _ => Err(not_supported()),
    }
}

/// Checks `cond` against the key schema and splits it into the partition key
/// value and the sort key condition.
pub fn extract(
    cond: &Condition,
    hash_key: &str,
    range_key: Option<&str>,
) -> Result<KeyCondition, ExprError> {
    let mut keyed: Vec<(&str, SortKeyCondition)> = Vec::new();
    for leaf in leaves(cond)? {
        let (name, c) = key_leaf(leaf)?;
        if keyed.iter().any(|(n, _)| *n == name) {
            return Err(invalid(
                "KeyConditionExpressions must only contain one condition per key",
            ));
        }
        keyed.push((name, c));
    }
    let Some(pos) = keyed.iter().position(|(n, _)| *n == hash_key) else {
        return Err(ExprError::new(format!(
            "Query condition missed key schema element: {hash_key}"
        )));
    };
    let (_, hash_cond) = keyed.remove(pos);
    let SortKeyCondition::Eq(hash_value) = hash_cond else {
        return Err(not_supported());
    };
    if keyed.iter().any(|(n, _)| Some(*n) != range_key) {
        return Err(match range_key {
            Some(r) if !keyed.iter().any(|(n, _)| *n == r) => {
                ExprError::new(format!("Query condition missed key schema element: {r}"))
            }
            _ => not_supported(),
        });
    }
    let sort = keyed.pop().map(|(_, c)| c);
    Ok(KeyCondition { hash_value, sort })
}

impl SortKeyCondition {
    /// Returns whether a sort key value satisfies the condition (values of
    /// another type never do).
    pub fn matches(&self, key: &AttributeValue) -> bool {
        let cmp = |v: &AttributeValue| compare_scalars(key, v);
        match self {
            SortKeyCondition::Eq(v) => cmp(v) == Some(Ordering::Equal),
            SortKeyCondition::Lt(v) => cmp(v) == Some(Ordering::Less),
            SortKeyCondition::Le(v) => matches!(cmp(v), Some(Ordering::Less | Ordering::Equal)),
            SortKeyCondition::Gt(v) => cmp(v) == Some(Ordering::Greater),
            SortKeyCondition::Ge(v) => matches!(cmp(v), Some(Ordering::Greater | Ordering::Equal)),
            SortKeyCondition::Between(lo, hi) => {
                matches!(cmp(lo), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(hi), Some(Ordering::Less | Ordering::Equal))
            }
            SortKeyCondition::BeginsWith(prefix) => match (key, prefix) {
                (AttributeValue::S(k), AttributeValue::S(p)) => k.starts_with(p.as_str()),
                (AttributeValue::B(k), AttributeValue::B(p)) => k.starts_with(p),
                _ => false,
            },
        }
    }
}
