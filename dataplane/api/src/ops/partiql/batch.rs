//! BatchExecuteStatement: up to 25 statements, all reads (single-item
//! SELECTs) or all writes, each answered in order with its item or its own
//! error; one failing statement does not fail the batch. Writes go to the
//! store as one group commit.

use std::collections::HashMap;

use partita_model::{AttributeValue, Item};
use serde_json::{json, Map as JsonMap, Value};

use super::exec;
use super::parser::{self, Statement};
use super::plan::{Access, Plan};
use super::{check_statement, parameters, prepare, Prepared};
use crate::codec;
use crate::error::{ApiError, ErrorKind};
use crate::ops::common::{
    check_enum, read_units, CapacityMode, RETURN_CONSUMED_CAPACITY, RETURN_VALUES_ON_CCF,
};
use crate::request::{Request, Violations};
use crate::Api;

/// The most statements one batch may hold.
pub const MAX_BATCH_STATEMENTS: usize = 25;

/// One statement of the request.
struct Entry {
    text: String,
    params: Vec<AttributeValue>,
    consistent: bool,
    return_old_on_failure: bool,
}

/// The `Code` of a statement's error (BatchStatementErrorCodeEnum).
pub fn error_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ConditionalCheckFailed => "ConditionalCheckFailed",
        ErrorKind::ItemCollectionSizeLimitExceeded => "ItemCollectionSizeLimitExceeded",
        ErrorKind::LimitExceeded => "RequestLimitExceeded",
        ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
        ErrorKind::TransactionConflict => "TransactionConflict",
        ErrorKind::Throttling => "ThrottlingError",
        ErrorKind::InternalServerError => "InternalServerError",
        ErrorKind::ResourceNotFound => "ResourceNotFound",
        ErrorKind::AccessDenied => "AccessDenied",
        ErrorKind::DuplicateItem => "DuplicateItem",
        _ => "ValidationError",
    }
}

fn error_response(err: &ApiError, table: Option<&str>) -> Value {
    let mut error = JsonMap::new();
    error.insert("Code".into(), json!(error_code(err.kind)));
    error.insert("Message".into(), json!(err.message));
    if let Some(item) = err.extra.as_ref().and_then(|e| e.get("Item")) {
        error.insert("Item".into(), item.clone());
    }
    let mut out = JsonMap::new();
    out.insert("Error".into(), Value::Object(error));
    if let Some(t) = table {
        out.insert("TableName".into(), json!(t));
    }
    Value::Object(out)
}

fn item_response(table: &str, item: Option<&Item>) -> Value {
    let mut out = JsonMap::new();
    out.insert("TableName".into(), json!(table));
    if let Some(item) = item {
        out.insert("Item".into(), codec::item_to_json(item));
    }
    Value::Object(out)
}

fn decode_entries(req: &Request) -> Result<(Vec<Entry>, Violations), ApiError> {
    let mut violations = Violations::new();
    let mut entries = Vec::new();
    let Some(list) = req.array("Statements")? else {
        violations.push_null("statements");
        return Ok((entries, violations));
    };
    if list.is_empty() {
        violations.push(
            "'[]'",
            "statements",
            "Member must have length greater than or equal to 1",
        );
    }
    if list.len() > MAX_BATCH_STATEMENTS {
        violations.push_without_value(
            "statements",
            "Member must have length less than or equal to 25",
        );
    }
    for (i, v) in list.iter().enumerate() {
        let Value::Object(obj) = v else {
            return Err(crate::request::wrong_type(v, "Structure"));
        };
        let member = Request::from_object(obj.clone());
        let n = i + 1;
        let text = member.str("Statement")?;
        check_statement(
            &mut violations,
            text,
            &format!("statements.{n}.member.statement"),
        );
        let params = parameters(
            &mut violations,
            &member,
            &format!("statements.{n}.member.parameters"),
        )?;
        let on_failure = check_enum(
            &mut violations,
            &member,
            "ReturnValuesOnConditionCheckFailure",
            &format!("statements.{n}.member.returnValuesOnConditionCheckFailure"),
            RETURN_VALUES_ON_CCF,
        )?;
        entries.push(Entry {
            text: text.unwrap_or_default().to_string(),
            params,
            consistent: member.bool("ConsistentRead")?.unwrap_or(false),
            return_old_on_failure: on_failure == Some("ALL_OLD"),
        });
    }
    Ok((entries, violations))
}

pub async fn batch_execute_statement(api: &Api, req: Request) -> Result<Value, ApiError> {
    let (entries, mut violations) = decode_entries(&req)?;
    let rcc = check_enum(
        &mut violations,
        &req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    violations.into_result()?;
    let capacity = CapacityMode::parse(rcc);

    // Reads and writes cannot be mixed; statements that do not parse count
    // as neither.
    let kinds: Vec<Option<bool>> = entries
        .iter()
        .map(|e| parser::parse(&e.text).ok().map(|(s, _)| s.is_read()))
        .collect();
    if kinds.contains(&Some(true)) && kinds.contains(&Some(false)) {
        return Err(ApiError::validation(
            "Read and write requests together in the same batch is not supported.",
        ));
    }
    let prepared: Vec<Result<Prepared, ApiError>> = entries
        .iter()
        .map(|e| {
            let p = prepare(api, &e.text, &e.params, e.consistent)?;
            match (&p.statement, &p.plan) {
                (Statement::Exists(_), _) => Err(ApiError::validation(
                    "EXISTS can only be used in ExecuteTransaction write requests.",
                )),
                (_, Plan::Read(r)) if !r.key_terms_only || !matches!(r.access, Access::Get(_)) => {
                    Err(ApiError::validation("Only single item select is supported"))
                }
                _ => Ok(p),
            }
        })
        .collect();

    // Writes must name distinct items.
    let mut seen = Vec::new();
    for p in prepared.iter().flatten() {
        if let Plan::Write(w) = &p.plan {
            if let Some(key) = w.key(&p.def.key_schema) {
                let id = (w.table().to_string(), key);
                if seen.contains(&id) {
                    return Err(ApiError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
                seen.push(id);
            }
        }
    }

    let mut units: HashMap<String, f64> = HashMap::new();
    let mut responses: Vec<Option<Value>> = vec![None; entries.len()];
    let mut commands = Vec::new();
    let mut command_of = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        match p {
            Err(e) => responses[i] = Some(error_response(e, None)),
            Ok(p) => match &p.plan {
                Plan::Read(read) => {
                    let response = match exec::run_read(api, &p.def, read, None, None) {
                        Ok(page) => {
                            *units.entry(read.table.clone()).or_default() +=
                                read_units(page.read_bytes, entries[i].consistent);
                            item_response(&read.table, page.items.first())
                        }
                        Err(e) => error_response(&e, Some(&read.table)),
                    };
                    responses[i] = Some(response);
                }
                Plan::Write(w) => {
                    if let Some(command) = exec::write_command(w, &p.def) {
                        commands.push(command);
                        command_of.push(i);
                    }
                }
            },
        }
    }
    if !commands.is_empty() {
        let results = api.store.write_many(commands).await;
        for (i, result) in command_of.into_iter().zip(results) {
            let Some(Ok(p)) = prepared.get(i) else {
                continue;
            };
            let Plan::Write(w) = &p.plan else { continue };
            let response = match exec::write_result(w, result, entries[i].return_old_on_failure) {
                Ok((returned, u)) => {
                    *units.entry(w.table().to_string()).or_default() += u;
                    item_response(w.table(), returned.as_ref())
                }
                Err(e) => error_response(&e, Some(w.table())),
            };
            responses[i] = Some(response);
        }
    }
    let mut out = JsonMap::new();
    out.insert(
        "Responses".into(),
        Value::Array(
            responses
                .into_iter()
                .map(|r| r.unwrap_or_else(|| error_response(&ApiError::internal(), None)))
                .collect(),
        ),
    );
    if capacity != CapacityMode::None {
        let is_write = kinds.contains(&Some(false));
        let mut tables: Vec<(String, f64)> = units.into_iter().collect();
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        let list: Vec<Value> = tables
            .into_iter()
            .filter_map(|(t, u)| crate::ops::common::consumed_capacity(&t, u, capacity, is_write))
            .collect();
        out.insert("ConsumedCapacity".into(), Value::Array(list));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_follow_the_batch_statement_enum() {
        assert_eq!(error_code(ErrorKind::ResourceNotFound), "ResourceNotFound");
        assert_eq!(error_code(ErrorKind::Validation), "ValidationError");
        assert_eq!(error_code(ErrorKind::DuplicateItem), "DuplicateItem");
        assert_eq!(
            error_code(ErrorKind::ConditionalCheckFailed),
            "ConditionalCheckFailed"
        );
        assert_eq!(error_code(ErrorKind::Throttling), "ThrottlingError");
    }

    #[test]
    fn error_responses_carry_code_message_and_item() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S("a".into()));
        let err = ApiError::conditional_check_failed(Some(&item));
        let v = error_response(&err, Some("T"));
        assert_eq!(v["Error"]["Code"], "ConditionalCheckFailed");
        assert_eq!(v["Error"]["Message"], "The conditional request failed");
        assert_eq!(v["Error"]["Item"]["pk"]["S"], "a");
        assert_eq!(v["TableName"], "T");
    }
}
