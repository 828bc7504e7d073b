//! PartiQL: ExecuteStatement, BatchExecuteStatement and ExecuteTransaction.
//!
//! Pipeline: `lexer` (tokens with positions) → `parser` (statement syntax,
//! `?` placeholders unbound) → `plan` (parameters bound; WHERE, SET and
//! REMOVE turned into `partita-expr` ASTs; Get, Query or Scan chosen for a
//! SELECT; conditional Put/Update/Delete for writes) → `exec` (storage calls,
//! pagination, RETURNING). Batches and transactions reuse the same parse and
//! plan steps per statement; transactions then hand their actions to the
//! transaction executor of `ops::transact`.
//!
//! Messages are DynamoDB's: request constraint violations as for every
//! operation, "Statement wasn't well formed, can't be processed: ..." for
//! syntax, and the PartiQL-specific validation messages with their
//! "at line:column:length" suffix where DynamoDB adds one.
//!
//! Choices where DynamoDB could not be observed: syntax error details use
//! the PartiQL parser's short names ("Unexpected keyword", "Unexpected
//! token", "Unexpected term", "Unexpected end of statement", "Expected data
//! manipulation"); `x IS NULL` tests for a NULL value (not a missing one);
//! a SELECT on a secondary index returns the index's projected attributes
//! (no fetch of other attributes from the table).

mod batch;
mod bind;
mod exec;
mod lexer;
mod parser;
mod plan;
mod transaction;

use partita_model::{AttributeValue, TableDefinition};
use serde_json::{Map as JsonMap, Value};

use self::lexer::Pos;
use self::parser::Statement;
use self::plan::Plan;
use super::common::{
    check_enum, consumed_capacity, load_table, put_opt, read_units, CapacityMode,
    RETURN_CONSUMED_CAPACITY, RETURN_VALUES_ON_CCF,
};
use crate::codec;
use crate::error::ApiError;
use crate::request::{quoted, Request, Violations};
use crate::Api;

pub use batch::batch_execute_statement;
pub use transaction::execute_transaction;

/// The longest statement DynamoDB accepts, in characters.
pub const MAX_STATEMENT_LEN: usize = 8192;

/// The ValidationException for a statement that does not parse.
pub(crate) fn malformed(detail: &str) -> ApiError {
    ApiError::validation(format!(
        "Statement wasn't well formed, can't be processed: {detail}"
    ))
}

/// A ValidationException whose message ends with the statement position.
pub(crate) fn with_pos(message: &str, pos: Pos) -> ApiError {
    ApiError::validation(format!("{message} at {}", pos.suffix()))
}

/// Records the constraint violations of a `Statement` member at `path`.
fn check_statement(violations: &mut Violations, statement: Option<&str>, path: &str) {
    match statement {
        None => violations.push_null(path),
        Some(s) => {
            let len = s.chars().count();
            if len < 1 {
                violations.push(
                    &quoted(s),
                    path,
                    "Member must have length greater than or equal to 1",
                );
            } else if len > MAX_STATEMENT_LEN {
                violations.push(
                    &quoted(s),
                    path,
                    "Member must have length less than or equal to 8192",
                );
            }
        }
    }
}

/// Decodes a `Parameters` member, recording an empty list at `path`.
fn parameters(
    violations: &mut Violations,
    req: &Request,
    path: &str,
) -> Result<Vec<AttributeValue>, ApiError> {
    let Some(list) = req.array("Parameters")? else {
        return Ok(Vec::new());
    };
    if list.is_empty() {
        violations.push(
            "'[]'",
            path,
            "Member must have length greater than or equal to 1",
        );
    }
    list.iter().map(codec::value_from_json).collect()
}

/// Returns the partition key value a statement reads or writes, for
/// authorization (`dynamodb:LeadingKeys`): the key of a single-item read or
/// a write, the partition of a query; `None` for a scan or a statement that
/// does not plan (it fails on its own when executed).
pub(crate) fn statement_partition_key(
    api: &Api,
    text: &str,
    params: &[AttributeValue],
) -> Option<AttributeValue> {
    let prepared = prepare(api, text, params, false).ok()?;
    let hash = &prepared.def.key_schema.hash.name;
    match &prepared.plan {
        Plan::Read(read) => match &read.access {
            plan::Access::Get(key) => key.get(hash).cloned(),
            plan::Access::Query { hash, .. } => Some(hash.clone()),
            plan::Access::Scan => None,
        },
        Plan::Write(write) => write.key(&prepared.def.key_schema)?.get(hash).cloned(),
    }
}

/// A statement parsed, bound and planned against its table.
struct Prepared {
    statement: Statement,
    def: TableDefinition,
    plan: Plan,
}

/// Parses and plans one statement.
fn prepare(
    api: &Api,
    text: &str,
    params: &[AttributeValue],
    consistent: bool,
) -> Result<Prepared, ApiError> {
    let (statement, count) = parser::parse(text)?;
    if count != params.len() {
        return Err(plan::param_count_mismatch());
    }
    let def = load_table(api, statement.table())?;
    let plan = plan::plan(&statement, &def, params, consistent)?;
    Ok(Prepared {
        statement,
        def,
        plan,
    })
}

pub async fn execute_statement(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut violations = Violations::new();
    let text = req.str("Statement")?;
    check_statement(&mut violations, text, "statement");
    let params = parameters(&mut violations, &req, "parameters")?;
    let limit = req.i64("Limit")?;
    if let Some(l) = limit.filter(|l| *l < 1) {
        violations.push(
            &quoted(&l.to_string()),
            "limit",
            "Member must have value greater than or equal to 1",
        );
    }
    let next_token = req.str("NextToken")?;
    if let Some(t) = next_token {
        if t.is_empty() {
            violations.push(
                &quoted(t),
                "nextToken",
                "Member must have length greater than or equal to 1",
            );
        } else if t.len() > 32768 {
            violations.push(
                &quoted(t),
                "nextToken",
                "Member must have length less than or equal to 32768",
            );
        }
    }
    let rcc = check_enum(
        &mut violations,
        &req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    let on_failure = check_enum(
        &mut violations,
        &req,
        "ReturnValuesOnConditionCheckFailure",
        "returnValuesOnConditionCheckFailure",
        RETURN_VALUES_ON_CCF,
    )?;
    violations.into_result()?;
    let text = text.unwrap_or_default();
    let consistent = req.bool("ConsistentRead")?.unwrap_or(false);
    let capacity = CapacityMode::parse(rcc);
    let prepared = prepare(api, text, &params, consistent)?;
    let mut out = JsonMap::new();
    match &prepared.plan {
        Plan::Read(read) => {
            let start = match next_token {
                Some(t) => Some(exec::decode_token(
                    t,
                    text,
                    &params,
                    &prepared.def,
                    read.index.as_deref(),
                )?),
                None => None,
            };
            let limit = limit.map(|l| l.max(1) as usize);
            let page = exec::run_read(api, &prepared.def, read, limit, start.as_ref())?;
            out.insert(
                "Items".to_string(),
                Value::Array(page.items.iter().map(codec::item_to_json).collect()),
            );
            if let Some(key) = &page.last_key {
                out.insert(
                    "NextToken".to_string(),
                    Value::String(exec::encode_token(text, &params, key)),
                );
            }
            put_opt(
                &mut out,
                "ConsumedCapacity",
                consumed_capacity(
                    &read.table,
                    read_units(page.read_bytes, consistent),
                    capacity,
                    false,
                ),
            );
        }
        Plan::Write(write) => {
            let Some((table, command)) = exec::write_command(write, &prepared.def) else {
                return Err(ApiError::validation(
                    "EXISTS can only be used in ExecuteTransaction write requests.",
                ));
            };
            let result = api.store.write(&table, command).await;
            let (returned, units) =
                exec::write_result(write, result, on_failure == Some("ALL_OLD"))?;
            out.insert(
                "Items".to_string(),
                Value::Array(returned.iter().map(codec::item_to_json).collect()),
            );
            put_opt(
                &mut out,
                "ConsumedCapacity",
                consumed_capacity(&table, units, capacity, true),
            );
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_constraints_render_like_dynamodb() {
        let mut v = Violations::new();
        check_statement(&mut v, None, "statement");
        assert_eq!(
            v.into_result().unwrap_err().message,
            "1 validation error detected: Value null at 'statement' failed to satisfy constraint: Member must not be null"
        );
        let mut v = Violations::new();
        check_statement(&mut v, Some(""), "statement");
        assert!(v
            .into_result()
            .unwrap_err()
            .message
            .ends_with("Member must have length greater than or equal to 1"));
        let long = "x".repeat(MAX_STATEMENT_LEN + 1);
        let mut v = Violations::new();
        check_statement(&mut v, Some(&long), "statement");
        assert!(v
            .into_result()
            .unwrap_err()
            .message
            .ends_with("Member must have length less than or equal to 8192"));
        let mut v = Violations::new();
        check_statement(&mut v, Some("SELECT * FROM t"), "statement");
        assert!(v.is_empty());
    }

    #[test]
    fn malformed_and_positioned_messages() {
        assert_eq!(
            malformed("Unexpected keyword").message,
            "Statement wasn't well formed, can't be processed: Unexpected keyword"
        );
        let pos = Pos {
            line: 1,
            column: 8,
            len: 5,
        };
        assert_eq!(
            with_pos("Unexpected path component", pos).message,
            "Unexpected path component at 1:8:5"
        );
    }
}
