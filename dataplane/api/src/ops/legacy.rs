//! DynamoDB's legacy (pre-expression) parameters translated into expression
//! ASTs: Expected + ConditionalOperator, AttributeUpdates, AttributesToGet,
//! KeyConditions, QueryFilter and ScanFilter.
//!
//! Owns: the JSON shape of those parameters, their validation with
//! DynamoDB's messages, and their meaning expressed in the resolved ASTs of
//! `partita-expr`, so storage evaluates legacy and expression requests with
//! the same code.
//!
//! Legacy semantics and how they map onto the AST (each pinned by a test
//! that evaluates the translation):
//! - `EQ`, `LE`, `LT`, `GE`, `GT`: comparisons; false when the attribute is
//!   missing or of another type.
//! - `NE`: true when the attribute is missing or of another type (the
//!   evaluator's `<>` already behaves so).
//! - `NULL` / `NOT_NULL`: `attribute_not_exists` / `attribute_exists`.
//! - `CONTAINS`: substring of S or B, member of a set, element of a list;
//!   `NOT_CONTAINS` is its negation, so also true on a missing attribute.
//! - `BEGINS_WITH`, `IN`, `BETWEEN`: the functions / operators of the same
//!   name.
//! - `Expected` `{Exists: false}`: `attribute_not_exists`; `{Value: v}` with
//!   `Exists` true or absent: `attr = v`.
//! - `AttributeUpdates`: `PUT` → `SET a = v`; `DELETE` without a value →
//!   `REMOVE a`; `DELETE` with a set → `DELETE a v`; `ADD` of a number or a
//!   set → `ADD a v`; `ADD` of a list appends →
//!   `SET a = list_append(if_not_exists(a, []), v)`.
//!
//! Validation order and messages follow DynamoDB as recorded by dynalite's
//! test suite (which was verified against DynamoDB): for every condition the
//! values are decoded, then the number of values, then that they share one
//! type, then the types the operator accepts, then the order of `BETWEEN`
//! bounds. [`key_conditions`] then checks the conditions against the key
//! attribute names. The caller checks what needs the key types (a value of
//! the wrong type, "Condition parameter type does not match schema type")
//! and that a QueryFilter names no key attribute.
//!
//! Not expressible here: at apply time DynamoDB reports a legacy ADD/DELETE
//! on an attribute of another type as "Type mismatch for attribute to
//! update", while the AST's evaluator reports the expression API's "An
//! operand in the update expression has an incorrect data type"; the caller
//! rewrites the message when the request used `AttributeUpdates`.

use std::cmp::Ordering;

use partita_expr::{
    CompareOp, Condition, KeyCondition, Operand, Path, ProjectionExpression, SetValue,
    SortKeyCondition, UpdateExpression,
};
use partita_model::AttributeValue;
use serde_json::{Map as JsonMap, Value};

use crate::codec::value_from_json;
use crate::error::ApiError;
use crate::request::{quoted, wrong_type, Violations};

const INVALID: &str = "One or more parameter values were invalid: ";

/// The ComparisonOperator enum as DynamoDB lists it in violation messages.
const OPERATOR_SET: &str =
    "[IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]";

/// The AttributeAction enum as DynamoDB lists it in violation messages.
const ACTION_SET: &str = "[ADD, PUT, DELETE]";

/// A legacy ComparisonOperator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Le,
    Lt,
    Ge,
    Gt,
    NotNull,
    Null,
    Contains,
    NotContains,
    BeginsWith,
    In,
    Between,
}

const OPERATORS: [(&str, Op); 13] = [
    ("EQ", Op::Eq),
    ("NE", Op::Ne),
    ("LE", Op::Le),
    ("LT", Op::Lt),
    ("GE", Op::Ge),
    ("GT", Op::Gt),
    ("NOT_NULL", Op::NotNull),
    ("NULL", Op::Null),
    ("CONTAINS", Op::Contains),
    ("NOT_CONTAINS", Op::NotContains),
    ("BEGINS_WITH", Op::BeginsWith),
    ("IN", Op::In),
    ("BETWEEN", Op::Between),
];

impl Op {
    fn parse(name: &str) -> Option<Op> {
        OPERATORS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    fn name(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("", |(n, _)| n)
    }

    /// Returns true when the operator takes `n` values.
    fn arity_ok(self, n: usize) -> bool {
        match self {
            Op::Null | Op::NotNull => n == 0,
            Op::In => n >= 1,
            Op::Between => n == 2,
            _ => n == 1,
        }
    }

    /// Returns true when the operator accepts a value of this type.
    fn accepts(self, value: &AttributeValue) -> bool {
        use AttributeValue as V;
        let scalar = matches!(value, V::S(_) | V::N(_) | V::B(_));
        match self {
            Op::Eq | Op::Ne | Op::Null | Op::NotNull => true,
            Op::Le | Op::Lt | Op::Ge | Op::Gt | Op::In | Op::Between => scalar,
            Op::BeginsWith => matches!(value, V::S(_) | V::B(_)),
            Op::Contains | Op::NotContains => {
                !matches!(value, V::Ss(_) | V::Ns(_) | V::Bs(_) | V::M(_) | V::L(_))
            }
        }
    }

    /// Returns true when a Query may use the operator on a key attribute.
    fn indexable(self) -> bool {
        !matches!(
            self,
            Op::Null | Op::NotNull | Op::Ne | Op::Contains | Op::NotContains | Op::In
        )
    }
}

/// One validated legacy condition: attribute, operator, values.
#[derive(Debug)]
struct AttrCondition<'a> {
    name: &'a str,
    op: Op,
    values: Vec<AttributeValue>,
}

impl AttrCondition<'_> {
    /// Returns the condition as an expression AST.
    fn to_condition(&self) -> Result<Condition, ApiError> {
        let attr = Operand::Path(Path::attribute(self.name));
        let lit = |v: &AttributeValue| Operand::Value(v.clone());
        let compare = |op, v| Condition::Compare(attr.clone(), op, lit(v));
        Ok(match (self.op, self.values.as_slice()) {
            (Op::Eq, [v]) => compare(CompareOp::Eq, v),
            (Op::Ne, [v]) => compare(CompareOp::Ne, v),
            (Op::Le, [v]) => compare(CompareOp::Le, v),
            (Op::Lt, [v]) => compare(CompareOp::Lt, v),
            (Op::Ge, [v]) => compare(CompareOp::Ge, v),
            (Op::Gt, [v]) => compare(CompareOp::Gt, v),
            (Op::NotNull, []) => Condition::AttributeExists(Path::attribute(self.name)),
            (Op::Null, []) => Condition::AttributeNotExists(Path::attribute(self.name)),
            (Op::Contains, [v]) => Condition::Contains(attr.clone(), lit(v)),
            (Op::NotContains, [v]) => {
                Condition::Not(Box::new(Condition::Contains(attr.clone(), lit(v))))
            }
            (Op::BeginsWith, [v]) => Condition::BeginsWith(attr.clone(), lit(v)),
            (Op::In, vs) if !vs.is_empty() => {
                Condition::In(attr.clone(), vs.iter().map(lit).collect())
            }
            (Op::Between, [lo, hi]) => Condition::Between(attr.clone(), lit(lo), lit(hi)),
            (op, _) => return Err(arity_error(op)),
        })
    }
}

fn invalid(detail: impl std::fmt::Display) -> ApiError {
    ApiError::validation(format!("{INVALID}{detail}"))
}

fn arity_error(op: Op) -> ApiError {
    invalid(format_args!(
        "Invalid number of argument(s) for the {} ComparisonOperator",
        op.name()
    ))
}

/// The ValidationException for one constraint violation.
fn violation(value: &str, path: &str, constraint: &str) -> ApiError {
    let mut v = Violations::new();
    v.push(value, path, constraint);
    match v.into_result() {
        Err(e) => e,
        Ok(()) => ApiError::validation(constraint.to_string()),
    }
}

/// Returns a member of a JSON structure; JSON `null` counts as absent.
fn member<'a>(obj: &'a JsonMap<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn structure(value: &Value) -> Result<&JsonMap<String, Value>, ApiError> {
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(ApiError::serialization("Unexpected value type in payload")),
    }
}

fn string_member<'a>(
    obj: &'a JsonMap<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match member(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(other, "String")),
    }
}

fn value_member(obj: &JsonMap<String, Value>) -> Result<Option<AttributeValue>, ApiError> {
    member(obj, "Value").map(value_from_json).transpose()
}

fn value_list(obj: &JsonMap<String, Value>) -> Result<Option<Vec<AttributeValue>>, ApiError> {
    match member(obj, "AttributeValueList") {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(value_from_json)
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(Value::Object(_)) => Err(ApiError::serialization(
            "Start of structure or map found where not expected",
        )),
        Some(_) => Err(ApiError::serialization("Unexpected field type")),
    }
}

/// Parses a ComparisonOperator found at `path` (for the violation message).
fn parse_operator(name: &str, path: &str) -> Result<Op, ApiError> {
    Op::parse(name).ok_or_else(|| {
        violation(
            &quoted(name),
            path,
            &format!("Member must satisfy enum value set: {OPERATOR_SET}"),
        )
    })
}

/// Orders two values of one comparable scalar type (S, N or B).
fn scalar_order(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::N(x), AttributeValue::N(y)) => Some(x.cmp(y)),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Checks an operator's values: their number, that they share one type, the
/// types the operator accepts, and the order of BETWEEN bounds.
fn check_operands(op: Op, values: &[AttributeValue]) -> Result<(), ApiError> {
    if !op.arity_ok(values.len()) {
        return Err(arity_error(op));
    }
    if let Some(first) = values.first() {
        if values.iter().any(|v| v.type_name() != first.type_name()) {
            return Err(invalid(
                "AttributeValues inside AttributeValueList must be of same type",
            ));
        }
    }
    if let Some(bad) = values.iter().find(|v| !op.accepts(v)) {
        return Err(invalid(format_args!(
            "ComparisonOperator {} is not valid for {} AttributeValue type",
            op.name(),
            bad.type_name()
        )));
    }
    if let (Op::Between, [lo, hi]) = (op, values) {
        if scalar_order(lo, hi) == Some(Ordering::Greater) {
            return Err(ApiError::validation(
                "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound",
            ));
        }
    }
    Ok(())
}

/// Parses one `{ComparisonOperator, AttributeValueList}` entry of a
/// QueryFilter, ScanFilter or KeyConditions map (`member` names the map in
/// violation messages: "scanFilter", "keyConditions", ...).
fn parse_condition<'a>(
    name: &'a str,
    spec: &Value,
    member_name: &str,
) -> Result<AttrCondition<'a>, ApiError> {
    let obj = structure(spec)?;
    let values = value_list(obj)?.unwrap_or_default();
    let path = format!("{member_name}.{name}.member.comparisonOperator");
    let Some(op_name) = string_member(obj, "ComparisonOperator")? else {
        return Err(violation("null", &path, "Member must not be null"));
    };
    let op = parse_operator(op_name, &path)?;
    check_operands(op, &values)?;
    Ok(AttrCondition { name, op, values })
}

fn parse_conditions<'a>(
    conditions: &'a JsonMap<String, Value>,
    member_name: &str,
) -> Result<Vec<AttrCondition<'a>>, ApiError> {
    conditions
        .iter()
        .map(|(name, spec)| parse_condition(name, spec, member_name))
        .collect()
}

/// How the entries of Expected or a filter combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combine {
    And,
    Or,
}

fn parse_conditional_operator(op: Option<&str>) -> Result<Combine, ApiError> {
    match op {
        None | Some("AND") => Ok(Combine::And),
        Some("OR") => Ok(Combine::Or),
        Some(other) => Err(violation(
            &quoted(other),
            "conditionalOperator",
            "Member must satisfy enum value set: [OR, AND]",
        )),
    }
}

/// A condition that holds for every item (and for a missing item): what an
/// empty Expected or filter map means.
fn always_true() -> Condition {
    Condition::Compare(
        Operand::Value(AttributeValue::Null),
        CompareOp::Eq,
        Operand::Value(AttributeValue::Null),
    )
}

fn combine(parts: Vec<Condition>, how: Combine) -> Condition {
    let mut iter = parts.into_iter();
    let Some(first) = iter.next() else {
        return always_true();
    };
    iter.fold(first, |acc, next| match how {
        Combine::And => Condition::And(Box::new(acc), Box::new(next)),
        Combine::Or => Condition::Or(Box::new(acc), Box::new(next)),
    })
}

/// Translates one entry of `Expected`.
fn expected_entry(name: &str, spec: &Value) -> Result<Condition, ApiError> {
    let obj = structure(spec)?;
    let value = value_member(obj)?;
    let list = value_list(obj)?;
    let exists = match member(obj, "Exists") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(wrong_type(other, "Boolean")),
    };
    let operator = string_member(obj, "ComparisonOperator")?;
    if list.is_some() && value.is_some() {
        return Err(invalid(format_args!(
            "Value and AttributeValueList cannot be used together for Attribute: {name}"
        )));
    }
    if let Some(op_name) = operator {
        let op = parse_operator(
            op_name,
            &format!("expected.{name}.member.comparisonOperator"),
        )?;
        if exists.is_some() {
            return Err(invalid(format_args!(
                "Exists and ComparisonOperator cannot be used together for Attribute: {name}"
            )));
        }
        if !matches!(op, Op::Null | Op::NotNull) && list.is_none() && value.is_none() {
            return Err(invalid(format_args!(
                "Value or AttributeValueList must be used with ComparisonOperator: {} for Attribute: {name}",
                op.name()
            )));
        }
        let values = match (list, value) {
            (Some(list), _) => list,
            (None, Some(v)) => vec![v],
            (None, None) => Vec::new(),
        };
        check_operands(op, &values)?;
        return AttrCondition { name, op, values }.to_condition();
    }
    if list.is_some() {
        return Err(invalid(format_args!(
            "AttributeValueList can only be used with a ComparisonOperator for Attribute: {name}"
        )));
    }
    let path = Path::attribute(name);
    match (exists, value) {
        (Some(false), None) => Ok(Condition::AttributeNotExists(path)),
        (Some(false), Some(_)) => Err(invalid(format_args!(
            "Value cannot be used when Exists is false for Attribute: {name}"
        ))),
        (_, Some(v)) => Ok(Condition::Compare(
            Operand::Path(path),
            CompareOp::Eq,
            Operand::Value(v),
        )),
        (exists, None) => Err(invalid(format_args!(
            "Value must be provided when Exists is {} for Attribute: {name}",
            if exists.is_some() { "true" } else { "null" }
        ))),
    }
}

/// Translates `Expected` (with `ConditionalOperator`) into a condition.
/// An empty map is a condition every item meets.
pub fn expected_condition(
    expected: &JsonMap<String, Value>,
    conditional_operator: Option<&str>,
) -> Result<Condition, ApiError> {
    let how = parse_conditional_operator(conditional_operator)?;
    let parts = expected
        .iter()
        .map(|(name, spec)| expected_entry(name, spec))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(combine(parts, how))
}

/// Translates `QueryFilter` / `ScanFilter` (with `ConditionalOperator`) into
/// a condition. An empty map is a condition every item meets. A missing or
/// unknown ComparisonOperator is reported at `scanFilter.<attr>...`; see
/// [`filter_condition_in`].
#[cfg(test)]
pub fn filter_condition(
    filter: &JsonMap<String, Value>,
    conditional_operator: Option<&str>,
) -> Result<Condition, ApiError> {
    filter_condition_in("scanFilter", filter, conditional_operator)
}

/// [`filter_condition`] for the request member `member_name` ("queryFilter"
/// or "scanFilter"), which DynamoDB names when a ComparisonOperator is
/// missing or unknown.
pub fn filter_condition_in(
    member_name: &str,
    filter: &JsonMap<String, Value>,
    conditional_operator: Option<&str>,
) -> Result<Condition, ApiError> {
    let how = parse_conditional_operator(conditional_operator)?;
    let parts = parse_conditions(filter, member_name)?
        .iter()
        .map(AttrCondition::to_condition)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(combine(parts, how))
}

/// Translates one entry of `AttributeUpdates` into `update`.
fn attribute_update(
    update: &mut UpdateExpression,
    name: &str,
    spec: &Value,
) -> Result<(), ApiError> {
    let obj = structure(spec)?;
    let value = value_member(obj)?;
    let action = string_member(obj, "Action")?.unwrap_or("PUT");
    if !matches!(action, "ADD" | "PUT" | "DELETE") {
        return Err(violation(
            &quoted(action),
            &format!("attributeUpdates.{name}.member.action"),
            &format!("Member must satisfy enum value set: {ACTION_SET}"),
        ));
    }
    let path = Path::attribute(name);
    let Some(value) = value else {
        if action != "DELETE" {
            return Err(invalid(
                "Only DELETE action is allowed when no attribute value is specified",
            ));
        }
        update.remove.push(path);
        return Ok(());
    };
    match action {
        "DELETE" => match value {
            AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_) => {
                update.delete.push((path, value));
            }
            other => {
                return Err(invalid(format_args!(
                    "DELETE action with value is not supported for the type {}",
                    other.type_name()
                )))
            }
        },
        "ADD" => match value {
            AttributeValue::N(_)
            | AttributeValue::Ss(_)
            | AttributeValue::Ns(_)
            | AttributeValue::Bs(_) => update.add.push((path, value)),
            AttributeValue::L(_) => {
                let existing = SetValue::IfNotExists(
                    path.clone(),
                    Box::new(SetValue::Operand(Operand::Value(AttributeValue::L(
                        Vec::new(),
                    )))),
                );
                let appended = SetValue::ListAppend(
                    Box::new(existing),
                    Box::new(SetValue::Operand(Operand::Value(value))),
                );
                update.set.push((path, appended));
            }
            other => {
                return Err(invalid(format_args!(
                    "ADD action is not supported for the type {}",
                    other.type_name()
                )))
            }
        },
        _ => update
            .set
            .push((path, SetValue::Operand(Operand::Value(value)))),
    }
    Ok(())
}

/// Translates `AttributeUpdates` into an update expression.
pub fn attribute_updates(updates: &JsonMap<String, Value>) -> Result<UpdateExpression, ApiError> {
    let mut update = UpdateExpression::default();
    for (name, spec) in updates {
        attribute_update(&mut update, name, spec)?;
    }
    Ok(update)
}

/// Translates `AttributesToGet` into a projection of top-level attributes.
pub fn attributes_to_get(names: &[Value]) -> Result<ProjectionExpression, ApiError> {
    if names.is_empty() {
        return Err(violation(
            "'[]'",
            "attributesToGet",
            "Member must have length greater than or equal to 1",
        ));
    }
    let mut seen: Vec<&str> = Vec::with_capacity(names.len());
    for name in names {
        let Value::String(name) = name else {
            return Err(wrong_type(name, "String"));
        };
        if seen.contains(&name.as_str()) {
            return Err(invalid(format_args!(
                "Duplicate value in attribute name: {name}"
            )));
        }
        seen.push(name);
    }
    Ok(ProjectionExpression(
        seen.into_iter().map(Path::attribute).collect(),
    ))
}

/// Translates `KeyConditions` into a key condition for the given key names
/// (of the table or of the index being queried). Checks, in DynamoDB's
/// order: each condition, their number (1 or 2), then per key attribute
/// (hash first) that it has a condition and that the operator is usable
/// there.
pub fn key_conditions(
    conditions: &JsonMap<String, Value>,
    hash_key: &str,
    range_key: Option<&str>,
) -> Result<KeyCondition, ApiError> {
    let parsed = parse_conditions(conditions, "keyConditions")?;
    if !(1..=2).contains(&parsed.len()) {
        return Err(ApiError::validation(
            "Conditions can be of length 1 or 2 only",
        ));
    }
    let find = |name: &str| parsed.iter().find(|c| c.name == name);
    let not_supported = || ApiError::validation("Query key condition not supported");
    let missed = |name: &str| {
        ApiError::validation(format!("Query condition missed key schema element: {name}"))
    };

    if range_key.is_none() && parsed.len() > 1 {
        return Err(not_supported());
    }
    let hash = find(hash_key).ok_or_else(|| missed(hash_key))?;
    check_indexable(hash)?;
    let hash_value = match (hash.op, hash.values.as_slice()) {
        (Op::Eq, [v]) => v.clone(),
        _ => return Err(not_supported()),
    };

    let sort = match range_key {
        None => None,
        Some(range_key) => match find(range_key) {
            None if parsed.len() > 1 => return Err(missed(range_key)),
            None => None,
            Some(cond) => {
                check_indexable(cond)?;
                Some(sort_key_condition(cond)?)
            }
        },
    };
    Ok(KeyCondition { hash_value, sort })
}

fn check_indexable(cond: &AttrCondition<'_>) -> Result<(), ApiError> {
    if cond.op.indexable() {
        Ok(())
    } else {
        Err(ApiError::validation(
            "Attempted conditional constraint is not an indexable operation",
        ))
    }
}

fn sort_key_condition(cond: &AttrCondition<'_>) -> Result<SortKeyCondition, ApiError> {
    Ok(match (cond.op, cond.values.as_slice()) {
        (Op::Eq, [v]) => SortKeyCondition::Eq(v.clone()),
        (Op::Lt, [v]) => SortKeyCondition::Lt(v.clone()),
        (Op::Le, [v]) => SortKeyCondition::Le(v.clone()),
        (Op::Gt, [v]) => SortKeyCondition::Gt(v.clone()),
        (Op::Ge, [v]) => SortKeyCondition::Ge(v.clone()),
        (Op::BeginsWith, [v]) => SortKeyCondition::BeginsWith(v.clone()),
        (Op::Between, [lo, hi]) => SortKeyCondition::Between(lo.clone(), hi.clone()),
        _ => {
            return Err(ApiError::validation(
                "Attempted conditional constraint is not an indexable operation",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use partita_model::Item;
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> JsonMap<String, Value> {
        match v {
            Value::Object(o) => o,
            other => panic!("not an object: {other}"),
        }
    }

    fn av(v: Value) -> AttributeValue {
        value_from_json(&v).unwrap()
    }

    fn item(v: Value) -> Item {
        crate::codec::item_from_json(&v).unwrap()
    }

    fn attr(name: &str) -> Operand {
        Operand::Path(Path::attribute(name))
    }

    fn lit(v: Value) -> Operand {
        Operand::Value(av(v))
    }

    fn expected(v: Value) -> Result<Condition, ApiError> {
        expected_condition(&obj(v), None)
    }

    fn expected_err(v: Value) -> String {
        let e = expected(v).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Validation, "{}", e.message);
        e.message
    }

    fn filter(v: Value) -> Condition {
        filter_condition(&obj(v), None).unwrap()
    }

    fn filter_err(v: Value) -> String {
        filter_condition(&obj(v), None).unwrap_err().message
    }

    /// Evaluates a one-entry ScanFilter `{a: {op, values}}` against `it`.
    fn holds(op: &str, values: Value, it: &Item) -> bool {
        let cond = filter(json!({"a": {"ComparisonOperator": op, "AttributeValueList": values}}));
        cond.evaluate(Some(it)).unwrap()
    }

    fn invalid_msg(detail: &str) -> String {
        format!("{INVALID}{detail}")
    }

    // ---- Expected: translation ----

    #[test]
    fn expected_exists_false_is_attribute_not_exists() {
        assert_eq!(
            expected(json!({"pk": {"Exists": false}})).unwrap(),
            Condition::AttributeNotExists(Path::attribute("pk"))
        );
    }

    #[test]
    fn expected_value_is_equality_with_or_without_exists_true() {
        let want = Condition::Compare(attr("a"), CompareOp::Eq, lit(json!({"S": "x"})));
        assert_eq!(expected(json!({"a": {"Value": {"S": "x"}}})).unwrap(), want);
        assert_eq!(
            expected(json!({"a": {"Value": {"S": "x"}, "Exists": true}})).unwrap(),
            want
        );
    }

    #[test]
    fn expected_comparison_operator_with_value_or_list() {
        let want = Condition::BeginsWith(attr("name"), lit(json!({"S": "hello"})));
        assert_eq!(
            expected(json!({"name": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "hello"}]}}))
                .unwrap(),
            want
        );
        // DynamoDB also takes the single value from `Value`.
        assert_eq!(
            expected(
                json!({"name": {"ComparisonOperator": "BEGINS_WITH", "Value": {"S": "hello"}}})
            )
            .unwrap(),
            want
        );
    }

    #[test]
    fn expected_entries_combine_with_and_by_default_and_or_on_request() {
        let spec = obj(json!({
            "a": {"Value": {"S": "1"}},
            "b": {"Exists": false},
        }));
        let a = Condition::Compare(attr("a"), CompareOp::Eq, lit(json!({"S": "1"})));
        let b = Condition::AttributeNotExists(Path::attribute("b"));
        assert_eq!(
            expected_condition(&spec, None).unwrap(),
            Condition::And(Box::new(a.clone()), Box::new(b.clone()))
        );
        assert_eq!(
            expected_condition(&spec, Some("AND")).unwrap(),
            Condition::And(Box::new(a.clone()), Box::new(b.clone()))
        );
        assert_eq!(
            expected_condition(&spec, Some("OR")).unwrap(),
            Condition::Or(Box::new(a), Box::new(b))
        );
        assert_eq!(
            expected_condition(&spec, Some("AN")).unwrap_err().message,
            "1 validation error detected: Value 'AN' at 'conditionalOperator' failed to satisfy constraint: Member must satisfy enum value set: [OR, AND]"
        );
    }

    #[test]
    fn empty_expected_always_holds() {
        let cond = expected(json!({})).unwrap();
        assert!(cond.evaluate(None).unwrap());
        assert!(cond
            .evaluate(Some(&item(json!({"a": {"S": "x"}}))))
            .unwrap());
    }

    // ---- Expected: errors (wording from DynamoDB via dynalite's verified tests) ----

    #[test]
    fn expected_exists_and_value_errors() {
        assert_eq!(
            expected_err(json!({"a": {}})),
            invalid_msg("Value must be provided when Exists is null for Attribute: a")
        );
        assert_eq!(
            expected_err(json!({"a": {"Exists": true}})),
            invalid_msg("Value must be provided when Exists is true for Attribute: a")
        );
        assert_eq!(
            expected_err(json!({"a": {"Exists": false, "Value": {"S": "x"}}})),
            invalid_msg("Value cannot be used when Exists is false for Attribute: a")
        );
    }

    #[test]
    fn expected_mixing_errors() {
        assert_eq!(
            expected_err(json!({"a": {"ComparisonOperator": "LT"}})),
            invalid_msg("Value or AttributeValueList must be used with ComparisonOperator: LT for Attribute: a")
        );
        assert_eq!(
            expected_err(json!({"a": {"Exists": true, "ComparisonOperator": "LT"}})),
            invalid_msg("Exists and ComparisonOperator cannot be used together for Attribute: a")
        );
        assert_eq!(
            expected_err(json!({"a": {"AttributeValueList": []}})),
            invalid_msg(
                "AttributeValueList can only be used with a ComparisonOperator for Attribute: a"
            )
        );
        assert_eq!(
            expected_err(json!({"a": {"Exists": true, "AttributeValueList": []}})),
            invalid_msg(
                "AttributeValueList can only be used with a ComparisonOperator for Attribute: a"
            )
        );
        assert_eq!(
            expected_err(json!({"a": {"Value": {"S": "a"}, "AttributeValueList": []}})),
            invalid_msg("Value and AttributeValueList cannot be used together for Attribute: a")
        );
    }

    #[test]
    fn expected_operand_errors() {
        assert_eq!(
            expected_err(json!({"a": {"Value": {"S": "a"}, "ComparisonOperator": "BETWEEN"}})),
            invalid_msg("Invalid number of argument(s) for the BETWEEN ComparisonOperator")
        );
        assert_eq!(
            expected_err(json!({"a": {"Value": {"S": "a"}, "ComparisonOperator": "NULL"}})),
            invalid_msg("Invalid number of argument(s) for the NULL ComparisonOperator")
        );
        assert_eq!(
            expected_err(
                json!({"a": {"ComparisonOperator": "IN", "AttributeValueList": [{"S": "b"}, {"N": "1"}]}})
            ),
            invalid_msg("AttributeValues inside AttributeValueList must be of same type")
        );
        assert_eq!(
            expected_err(json!({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"S": "b"}, {"S": "a"}]}})),
            "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound"
        );
        assert_eq!(
            expected_err(
                json!({"a": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"SS": ["a"]}]}})
            ),
            invalid_msg("ComparisonOperator BEGINS_WITH is not valid for SS AttributeValue type")
        );
        assert_eq!(
            expected_err(json!({"a": {"ComparisonOperator": "XX", "AttributeValueList": [{"S": "a"}]}})),
            format!("1 validation error detected: Value 'XX' at 'expected.a.member.comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: {OPERATOR_SET}")
        );
    }

    #[test]
    fn expected_values_are_validated() {
        let e = expected(json!({"a": {"Value": {"N": "abc"}}})).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Validation);
        let e = expected(json!({"a": {"Exists": "yes"}})).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Serialization);
    }

    // ---- Expected: semantics against the evaluator ----

    #[test]
    fn expected_exists_semantics() {
        let cond = expected(json!({"pk": {"Exists": false}})).unwrap();
        assert!(cond.evaluate(None).unwrap());
        assert!(!cond
            .evaluate(Some(&item(json!({"pk": {"S": "k"}}))))
            .unwrap());

        let cond = expected(json!({"data": {"Exists": true, "Value": {"S": "v"}}})).unwrap();
        assert!(!cond.evaluate(None).unwrap());
        assert!(cond
            .evaluate(Some(&item(json!({"data": {"S": "v"}}))))
            .unwrap());
        assert!(!cond
            .evaluate(Some(&item(json!({"data": {"S": "w"}}))))
            .unwrap());
    }

    #[test]
    fn expected_or_passes_when_one_entry_matches() {
        let spec = obj(json!({
            "status": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "active"}]},
            "role": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "admin"}]},
        }));
        let it = item(json!({"status": {"S": "active"}, "role": {"S": "user"}}));
        assert!(expected_condition(&spec, Some("OR"))
            .unwrap()
            .evaluate(Some(&it))
            .unwrap());
        assert!(!expected_condition(&spec, Some("AND"))
            .unwrap()
            .evaluate(Some(&it))
            .unwrap());
    }

    // ---- Comparison operators: semantics ----

    #[test]
    fn eq_and_ne_semantics() {
        let it = item(json!({"a": {"N": "1.0"}, "s": {"SS": ["x", "y"]}}));
        assert!(holds("EQ", json!([{"N": "1"}]), &it));
        assert!(!holds("EQ", json!([{"S": "1"}]), &it));
        assert!(!holds("EQ", json!([{"N": "1"}]), &Item::new()));
        assert!(!holds("NE", json!([{"N": "1"}]), &it));
        // NE holds on another type and on a missing attribute.
        assert!(holds("NE", json!([{"S": "1"}]), &it));
        assert!(holds("NE", json!([{"N": "1"}]), &Item::new()));
        // Sets compare regardless of order.
        let sets = filter(
            json!({"s": {"ComparisonOperator": "EQ", "AttributeValueList": [{"SS": ["y", "x"]}]}}),
        );
        assert!(sets.evaluate(Some(&it)).unwrap());
    }

    #[test]
    fn eq_accepts_lists_maps_and_booleans() {
        let it = item(json!({"a": {"L": [{"S": "x"}, {"M": {"k": {"BOOL": true}}}]}}));
        assert!(holds(
            "EQ",
            json!([{"L": [{"S": "x"}, {"M": {"k": {"BOOL": true}}}]}]),
            &it
        ));
        assert!(holds("NE", json!([{"BOOL": true}]), &it));
    }

    #[test]
    fn ordering_semantics() {
        let it = item(json!({"a": {"N": "10"}}));
        assert!(holds("GT", json!([{"N": "9.5"}]), &it));
        assert!(!holds("GT", json!([{"N": "10"}]), &it));
        assert!(holds("GE", json!([{"N": "10"}]), &it));
        assert!(holds("LT", json!([{"N": "100"}]), &it));
        assert!(holds("LE", json!([{"N": "10"}]), &it));
        // Another type or a missing attribute never compares.
        assert!(!holds("LT", json!([{"S": "z"}]), &it));
        assert!(!holds("LT", json!([{"N": "100"}]), &Item::new()));
        let s = item(json!({"a": {"S": "beta"}}));
        assert!(holds(
            "BETWEEN",
            json!([{"S": "alpha"}, {"S": "gamma"}]),
            &s
        ));
        assert!(holds("BETWEEN", json!([{"S": "beta"}, {"S": "beta"}]), &s));
        assert!(!holds("BETWEEN", json!([{"S": "c"}, {"S": "d"}]), &s));
        assert!(!holds(
            "BETWEEN",
            json!([{"S": "a"}, {"S": "z"}]),
            &Item::new()
        ));
    }

    #[test]
    fn null_and_not_null_semantics() {
        let it = item(json!({"a": {"NULL": true}}));
        // NULL means "does not exist"; an attribute holding NULL exists.
        assert!(!holds("NULL", json!([]), &it));
        assert!(holds("NOT_NULL", json!([]), &it));
        assert!(holds("NULL", json!([]), &Item::new()));
        assert!(!holds("NOT_NULL", json!([]), &Item::new()));
        let cond = filter(json!({"a": {"ComparisonOperator": "NULL"}}));
        assert_eq!(cond, Condition::AttributeNotExists(Path::attribute("a")));
    }

    #[test]
    fn contains_semantics() {
        let s = item(json!({"a": {"S": "hello-world"}}));
        assert!(holds("CONTAINS", json!([{"S": "o-w"}]), &s));
        assert!(!holds("CONTAINS", json!([{"S": "xyz"}]), &s));
        let set = item(json!({"a": {"NS": ["1", "2"]}}));
        assert!(holds("CONTAINS", json!([{"N": "2.00"}]), &set));
        assert!(!holds("CONTAINS", json!([{"N": "3"}]), &set));
        let list = item(json!({"a": {"L": [{"S": "x"}, {"N": "1"}]}}));
        assert!(holds("CONTAINS", json!([{"N": "1"}]), &list));
        assert!(holds("CONTAINS", json!([{"S": "x"}]), &list));
        assert!(!holds("CONTAINS", json!([{"S": "y"}]), &list));
        let bin = item(json!({"a": {"B": "AQID"}}));
        assert!(holds("CONTAINS", json!([{"B": "Ag=="}]), &bin));
        assert!(!holds("CONTAINS", json!([{"S": "x"}]), &Item::new()));
    }

    #[test]
    fn not_contains_holds_on_missing_attribute() {
        let s = item(json!({"a": {"S": "hello"}}));
        assert!(!holds("NOT_CONTAINS", json!([{"S": "ell"}]), &s));
        assert!(holds("NOT_CONTAINS", json!([{"S": "xyz"}]), &s));
        assert!(holds("NOT_CONTAINS", json!([{"S": "x"}]), &Item::new()));
        let set = item(json!({"a": {"SS": ["p", "q"]}}));
        assert!(!holds("NOT_CONTAINS", json!([{"S": "p"}]), &set));
        assert!(holds("NOT_CONTAINS", json!([{"S": "r"}]), &set));
    }

    #[test]
    fn begins_with_and_in_semantics() {
        let s = item(json!({"a": {"S": "alpha-one"}}));
        assert!(holds("BEGINS_WITH", json!([{"S": "alpha"}]), &s));
        assert!(!holds("BEGINS_WITH", json!([{"S": "one"}]), &s));
        assert!(!holds("BEGINS_WITH", json!([{"S": "a"}]), &Item::new()));
        let n = item(json!({"a": {"N": "20"}}));
        assert!(holds("IN", json!([{"N": "10"}, {"N": "20"}]), &n));
        assert!(!holds("IN", json!([{"N": "10"}, {"N": "30"}]), &n));
        assert!(!holds("IN", json!([{"N": "20"}]), &Item::new()));
    }

    #[test]
    fn filter_entries_combine() {
        let spec = obj(json!({
            "name": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "alpha"}]},
            "val": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "20"}]},
        }));
        let and = filter_condition(&spec, Some("AND")).unwrap();
        let or = filter_condition(&spec, Some("OR")).unwrap();
        let low = item(json!({"name": {"S": "alpha-one"}, "val": {"N": "10"}}));
        let high = item(json!({"name": {"S": "alpha-three"}, "val": {"N": "30"}}));
        let other = item(json!({"name": {"S": "beta"}, "val": {"N": "40"}}));
        assert!(!and.evaluate(Some(&low)).unwrap());
        assert!(and.evaluate(Some(&high)).unwrap());
        assert!(!and.evaluate(Some(&other)).unwrap());
        assert!(or.evaluate(Some(&low)).unwrap());
        assert!(or.evaluate(Some(&other)).unwrap());
        assert!(filter_condition(&obj(json!({})), None)
            .unwrap()
            .evaluate(Some(&low))
            .unwrap());
    }

    // ---- Comparison operators: validation ----

    #[test]
    fn operator_arity_errors() {
        let cases = [
            ("EQ", json!([])),
            ("NE", json!([{"S": "a"}, {"S": "a"}])),
            ("LE", json!([])),
            ("LT", json!([{"S": "a"}, {"S": "a"}])),
            ("GE", json!([])),
            ("GT", json!([{"S": "a"}, {"S": "a"}])),
            ("CONTAINS", json!([])),
            ("NOT_CONTAINS", json!([{"S": "a"}, {"S": "a"}])),
            ("BEGINS_WITH", json!([])),
            ("IN", json!([])),
            ("BETWEEN", json!([{"S": "a"}])),
            ("BETWEEN", json!([{"S": "a"}, {"S": "a"}, {"S": "a"}])),
            ("NULL", json!([{"S": "a"}])),
            ("NOT_NULL", json!([{"S": "a"}])),
        ];
        for (op, values) in cases {
            assert_eq!(
                filter_err(json!({"a": {"ComparisonOperator": op, "AttributeValueList": values}})),
                invalid_msg(&format!(
                    "Invalid number of argument(s) for the {op} ComparisonOperator"
                )),
                "{op}"
            );
        }
        assert_eq!(
            filter_err(json!({"a": {"ComparisonOperator": "EQ"}})),
            invalid_msg("Invalid number of argument(s) for the EQ ComparisonOperator")
        );
    }

    #[test]
    fn operator_type_errors() {
        let not_scalar = [
            json!({"BOOL": true}),
            json!({"NULL": true}),
            json!({"SS": ["a"]}),
            json!({"NS": ["1"]}),
            json!({"BS": ["abcd"]}),
            json!({"M": {}}),
            json!({"L": []}),
        ];
        for op in ["LT", "LE", "GT", "GE", "IN"] {
            for v in &not_scalar {
                let ty = av(v.clone()).type_name();
                assert_eq!(
                    filter_err(json!({"a": {"ComparisonOperator": op, "AttributeValueList": [v]}})),
                    invalid_msg(&format!(
                        "ComparisonOperator {op} is not valid for {ty} AttributeValue type"
                    ))
                );
            }
        }
        for v in &not_scalar {
            let ty = av(v.clone()).type_name();
            assert_eq!(
                filter_err(
                    json!({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [v, v]}})
                ),
                invalid_msg(&format!(
                    "ComparisonOperator BETWEEN is not valid for {ty} AttributeValue type"
                ))
            );
        }
        for v in not_scalar.iter().chain([&json!({"N": "1"})]) {
            let ty = av(v.clone()).type_name();
            assert_eq!(
                filter_err(
                    json!({"a": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [v]}})
                ),
                invalid_msg(&format!(
                    "ComparisonOperator BEGINS_WITH is not valid for {ty} AttributeValue type"
                ))
            );
        }
        for op in ["CONTAINS", "NOT_CONTAINS"] {
            for v in &not_scalar[2..] {
                let ty = av(v.clone()).type_name();
                assert_eq!(
                    filter_err(json!({"a": {"ComparisonOperator": op, "AttributeValueList": [v]}})),
                    invalid_msg(&format!(
                        "ComparisonOperator {op} is not valid for {ty} AttributeValue type"
                    ))
                );
            }
        }
        // Accepted: EQ/NE of any type, CONTAINS of a scalar, BEGINS_WITH of B.
        filter(json!({"a": {"ComparisonOperator": "EQ", "AttributeValueList": [{"M": {}}]}}));
        filter(json!({"a": {"ComparisonOperator": "NE", "AttributeValueList": [{"SS": ["a"]}]}}));
        filter(
            json!({"a": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [{"N": "1"}]}}),
        );
        filter(
            json!({"a": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"B": "YQ=="}]}}),
        );
    }

    #[test]
    fn between_bounds_must_be_ordered() {
        assert_eq!(
            filter_err(json!({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "10"}, {"N": "9"}]}})),
            "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound"
        );
        filter(
            json!({"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "9"}, {"N": "10"}]}}),
        );
    }

    #[test]
    fn missing_or_unknown_operator_is_a_violation() {
        assert_eq!(
            filter_err(json!({"a": {}})),
            "1 validation error detected: Value null at 'scanFilter.a.member.comparisonOperator' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(
            filter_condition_in("queryFilter", &obj(json!({"a": {}})), None)
                .unwrap_err()
                .message,
            "1 validation error detected: Value null at 'queryFilter.a.member.comparisonOperator' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(
            filter_err(json!({"b": {"ComparisonOperator": ""}})),
            format!("1 validation error detected: Value '' at 'scanFilter.b.member.comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: {OPERATOR_SET}")
        );
    }

    // ---- AttributeUpdates ----

    fn updates(v: Value) -> Result<UpdateExpression, ApiError> {
        attribute_updates(&obj(v))
    }

    fn apply(v: Value, before: Value) -> Item {
        let mut it = item(before);
        updates(v).unwrap().apply(&mut it).unwrap();
        it
    }

    #[test]
    fn update_translation() {
        let u = updates(json!({
            "p": {"Action": "PUT", "Value": {"S": "x"}},
            "q": {"Value": {"N": "1"}},
            "r": {"Action": "DELETE"},
            "s": {"Action": "DELETE", "Value": {"SS": ["a"]}},
            "t": {"Action": "ADD", "Value": {"N": "5"}},
        }))
        .unwrap();
        assert_eq!(
            u.set,
            vec![
                (
                    Path::attribute("p"),
                    SetValue::Operand(lit(json!({"S": "x"})))
                ),
                (
                    Path::attribute("q"),
                    SetValue::Operand(lit(json!({"N": "1"})))
                ),
            ]
        );
        assert_eq!(u.remove, vec![Path::attribute("r")]);
        assert_eq!(
            u.delete,
            vec![(Path::attribute("s"), av(json!({"SS": ["a"]})))]
        );
        assert_eq!(u.add, vec![(Path::attribute("t"), av(json!({"N": "5"})))]);
    }

    #[test]
    fn update_semantics_on_existing_item() {
        let it = apply(
            json!({
                "name": {"Action": "PUT", "Value": {"S": "new-name"}},
                "count": {"Action": "ADD", "Value": {"N": "9"}},
                "extra": {"Action": "DELETE"},
                "tags": {"Action": "DELETE", "Value": {"SS": ["b"]}},
                "more": {"Action": "ADD", "Value": {"SS": ["c", "d"]}},
                "list": {"Action": "ADD", "Value": {"L": [{"N": "3"}]}},
            }),
            json!({
                "pk": {"S": "k"},
                "name": {"S": "old"},
                "count": {"N": "1"},
                "extra": {"S": "x"},
                "tags": {"SS": ["a", "b", "c"]},
                "more": {"SS": ["a", "c"]},
                "list": {"L": [{"N": "1"}, {"N": "2"}]},
            }),
        );
        assert_eq!(
            it,
            item(json!({
                "pk": {"S": "k"},
                "name": {"S": "new-name"},
                "count": {"N": "10"},
                "tags": {"SS": ["a", "c"]},
                "more": {"SS": ["a", "c", "d"]},
                "list": {"L": [{"N": "1"}, {"N": "2"}, {"N": "3"}]},
            }))
        );
    }

    #[test]
    fn update_semantics_on_missing_attributes() {
        // As in DynamoDB: DELETE of anything missing is a no-op, ADD creates.
        let it = apply(
            json!({
                "b": {"Action": "DELETE"},
                "c": {"Action": "DELETE", "Value": {"SS": ["a", "b"]}},
                "d": {"Action": "ADD", "Value": {"N": "5"}},
                "e": {"Action": "ADD", "Value": {"SS": ["a", "b"]}},
                "f": {"Action": "ADD", "Value": {"L": [{"S": "a"}, {"N": "1"}]}},
            }),
            json!({"a": {"S": "k"}}),
        );
        assert_eq!(
            it,
            item(json!({
                "a": {"S": "k"},
                "d": {"N": "5"},
                "e": {"SS": ["a", "b"]},
                "f": {"L": [{"S": "a"}, {"N": "1"}]},
            }))
        );
    }

    #[test]
    fn deleting_every_member_removes_the_set() {
        let it = apply(
            json!({"s": {"Action": "DELETE", "Value": {"NS": ["1", "2"]}}}),
            json!({"s": {"NS": ["2", "1"]}}),
        );
        assert!(it.is_empty());
    }

    #[test]
    fn type_mismatch_at_apply_time_fails() {
        let mut it = item(json!({"b": {"SS": ["1"]}, "c": {"N": "1"}}));
        for u in [
            json!({"b": {"Action": "DELETE", "Value": {"NS": ["1"]}}}),
            json!({"c": {"Action": "DELETE", "Value": {"NS": ["1"]}}}),
            json!({"b": {"Action": "ADD", "Value": {"NS": ["1"]}}}),
            json!({"c": {"Action": "ADD", "Value": {"L": []}}}),
        ] {
            assert!(updates(u).unwrap().apply(&mut it).is_err());
        }
    }

    #[test]
    fn update_validation_errors() {
        let err = |v: Value| updates(v).unwrap_err().message;
        assert_eq!(
            err(json!({"a": {"Action": "PUT"}})),
            invalid_msg("Only DELETE action is allowed when no attribute value is specified")
        );
        assert_eq!(
            err(json!({"a": {}})),
            invalid_msg("Only DELETE action is allowed when no attribute value is specified")
        );
        for v in [
            json!({"S": "1"}),
            json!({"N": "1"}),
            json!({"B": "Yg=="}),
            json!({"NULL": true}),
            json!({"BOOL": true}),
            json!({"M": {}}),
            json!({"L": []}),
        ] {
            let ty = av(v.clone()).type_name();
            assert_eq!(
                err(json!({"a": {"Action": "DELETE", "Value": v}})),
                invalid_msg(&format!(
                    "DELETE action with value is not supported for the type {ty}"
                ))
            );
        }
        for v in [
            json!({"S": "1"}),
            json!({"B": "Yg=="}),
            json!({"NULL": true}),
            json!({"BOOL": true}),
            json!({"M": {}}),
        ] {
            let ty = av(v.clone()).type_name();
            assert_eq!(
                err(json!({"a": {"Action": "ADD", "Value": v}})),
                invalid_msg(&format!("ADD action is not supported for the type {ty}"))
            );
        }
        assert_eq!(
            err(json!({"a": {"Action": "APPEND", "Value": {"S": "x"}}})),
            "1 validation error detected: Value 'APPEND' at 'attributeUpdates.a.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]"
        );
    }

    // ---- AttributesToGet ----

    #[test]
    fn attributes_to_get_are_top_level_paths() {
        let p = attributes_to_get(&[json!("name"), json!("a.b"), json!("c[0]")]).unwrap();
        assert_eq!(
            p,
            ProjectionExpression(vec![
                Path::attribute("name"),
                Path::attribute("a.b"),
                Path::attribute("c[0]"),
            ])
        );
    }

    #[test]
    fn attributes_to_get_errors() {
        assert_eq!(
            attributes_to_get(&[json!("a"), json!("b"), json!("a")])
                .unwrap_err()
                .message,
            invalid_msg("Duplicate value in attribute name: a")
        );
        assert_eq!(
            attributes_to_get(&[]).unwrap_err().message,
            "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
        let e = attributes_to_get(&[json!(1)]).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Serialization);
    }

    // ---- KeyConditions ----

    fn keys(v: Value, hash: &str, range: Option<&str>) -> Result<KeyCondition, ApiError> {
        key_conditions(&obj(v), hash, range)
    }

    fn keys_err(v: Value, hash: &str, range: Option<&str>) -> String {
        keys(v, hash, range).unwrap_err().message
    }

    fn eq(v: Value) -> Value {
        json!({"ComparisonOperator": "EQ", "AttributeValueList": [v]})
    }

    #[test]
    fn key_conditions_hash_only() {
        let kc = keys(json!({"pk": eq(json!({"S": "x"}))}), "pk", Some("sk")).unwrap();
        assert_eq!(
            kc,
            KeyCondition {
                hash_value: av(json!({"S": "x"})),
                sort: None
            }
        );
        let kc = keys(json!({"pk": eq(json!({"N": "1"}))}), "pk", None).unwrap();
        assert_eq!(kc.sort, None);
    }

    #[test]
    fn key_conditions_every_sort_operator() {
        let s = |v: &str| av(json!({"S": v}));
        let cases = [
            (
                json!({"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}),
                SortKeyCondition::Eq(s("a")),
            ),
            (
                json!({"ComparisonOperator": "LT", "AttributeValueList": [{"S": "a"}]}),
                SortKeyCondition::Lt(s("a")),
            ),
            (
                json!({"ComparisonOperator": "LE", "AttributeValueList": [{"S": "a"}]}),
                SortKeyCondition::Le(s("a")),
            ),
            (
                json!({"ComparisonOperator": "GT", "AttributeValueList": [{"S": "a"}]}),
                SortKeyCondition::Gt(s("a")),
            ),
            (
                json!({"ComparisonOperator": "GE", "AttributeValueList": [{"S": "a"}]}),
                SortKeyCondition::Ge(s("a")),
            ),
            (
                json!({"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "al"}]}),
                SortKeyCondition::BeginsWith(s("al")),
            ),
            (
                json!({"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"S": "beta"}, {"S": "epsilon"}]}),
                SortKeyCondition::Between(s("beta"), s("epsilon")),
            ),
        ];
        for (cond, want) in cases {
            let kc = keys(
                json!({"pk": eq(json!({"S": "p"})), "sk": cond}),
                "pk",
                Some("sk"),
            )
            .unwrap();
            assert_eq!(kc.hash_value, s("p"));
            assert_eq!(kc.sort, Some(want));
        }
    }

    #[test]
    fn key_conditions_schema_errors() {
        // Messages and cases from DynamoDB via dynalite's verified tests.
        let indexable = "Attempted conditional constraint is not an indexable operation";
        let unsupported = "Query key condition not supported";
        for op in [
            json!({"ComparisonOperator": "NULL"}),
            json!({"ComparisonOperator": "NOT_NULL"}),
            json!({"ComparisonOperator": "NE", "AttributeValueList": [{"S": "a"}]}),
            json!({"ComparisonOperator": "CONTAINS", "AttributeValueList": [{"S": "a"}]}),
            json!({"ComparisonOperator": "NOT_CONTAINS", "AttributeValueList": [{"S": "a"}]}),
            json!({"ComparisonOperator": "IN", "AttributeValueList": [{"S": "a"}]}),
        ] {
            assert_eq!(keys_err(json!({"a": op}), "a", None), indexable);
        }
        for op in ["LE", "LT", "GE", "GT", "BEGINS_WITH"] {
            let c = json!({"ComparisonOperator": op, "AttributeValueList": [{"S": "a"}]});
            assert_eq!(keys_err(json!({"a": c}), "a", None), unsupported);
        }
        let between = json!({"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"S": "a"}, {"S": "b"}]});
        assert_eq!(keys_err(json!({"a": between}), "a", None), unsupported);
        assert_eq!(
            keys_err(
                json!({"a": eq(json!({"S": "x"})), "b": eq(json!({"S": "y"}))}),
                "a",
                None
            ),
            unsupported
        );
        assert_eq!(
            keys_err(json!({"c": {"ComparisonOperator": "NULL"}}), "a", Some("b")),
            "Query condition missed key schema element: a"
        );
        assert_eq!(
            keys_err(
                json!({"a": eq(json!({"S": "x"})), "c": {"ComparisonOperator": "NULL"}}),
                "a",
                Some("b")
            ),
            "Query condition missed key schema element: b"
        );
        assert_eq!(
            keys_err(
                json!({"a": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [{"S": "a"}]}, "b": {"ComparisonOperator": "NULL"}}),
                "a",
                Some("b")
            ),
            indexable
        );
        assert_eq!(
            keys_err(
                json!({"a": eq(json!({"S": "x"})), "c": {"ComparisonOperator": "NULL"}}),
                "a",
                Some("c")
            ),
            indexable
        );
        assert_eq!(
            keys_err(json!({"x": eq(json!({"S": "x"}))}), "pk", None),
            "Query condition missed key schema element: pk"
        );
    }

    #[test]
    fn key_conditions_count_and_operand_errors() {
        let is_null = json!({"ComparisonOperator": "NULL"});
        assert_eq!(
            keys_err(
                json!({"a": is_null, "b": is_null, "c": is_null}),
                "a",
                Some("b")
            ),
            "Conditions can be of length 1 or 2 only"
        );
        assert_eq!(
            keys_err(json!({}), "a", None),
            "Conditions can be of length 1 or 2 only"
        );
        assert_eq!(
            keys_err(
                json!({"a": {"ComparisonOperator": "LE", "AttributeValueList": [{"SS": ["a"]}]}}),
                "a",
                None
            ),
            invalid_msg("ComparisonOperator LE is not valid for SS AttributeValue type")
        );
        assert_eq!(
            keys_err(
                json!({"a": {"ComparisonOperator": "NULL", "AttributeValueList": [{"S": "a"}]}}),
                "a",
                None
            ),
            invalid_msg("Invalid number of argument(s) for the NULL ComparisonOperator")
        );
        assert_eq!(
            keys_err(json!({"a": {}}), "a", None),
            "1 validation error detected: Value null at 'keyConditions.a.member.comparisonOperator' failed to satisfy constraint: Member must not be null"
        );
    }
}
