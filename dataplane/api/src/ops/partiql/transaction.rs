//! ExecuteTransaction: up to 100 statements, all reads (single-item
//! SELECTs, read from one snapshot) or all writes (INSERT, UPDATE, DELETE
//! and `EXISTS(SELECT ...)` condition checks), applied all-or-nothing by the
//! transaction executor of `ops::transact`, which also owns
//! ClientRequestToken idempotency and the cancellation reasons. An INSERT
//! whose key exists is cancelled with the reason `DuplicateItem`.

use partita_expr::{Condition, Path};
use serde_json::{json, Map as JsonMap, Value};

use super::exec::duplicate_item;
use super::plan::{Access, Plan, WritePlan};
use super::{check_statement, parameters, prepare, Prepared};
use crate::codec;
use crate::error::{ApiError, ErrorKind};
use crate::ops::common::{check_enum, consumed_capacity, CapacityMode, RETURN_CONSUMED_CAPACITY};
use crate::ops::transact::{
    request_fingerprint, run_get_transaction, run_write_transaction, TxAction, TxWrite,
};
use crate::request::{quoted, Request, Violations};
use crate::Api;

/// The most statements one transaction may hold.
pub const MAX_TRANSACTION_STATEMENTS: usize = 100;

/// The prefix DynamoDB gives a statement's validation error.
fn in_statement(i: usize, message: &str) -> ApiError {
    ApiError::validation(format!(
        "Validation failed in TransactStatements[{i}]: {message}"
    ))
}

/// Decodes and checks the request members; returns each statement's text
/// and parameters.
fn decode(req: &Request) -> Result<Vec<(String, Vec<partita_model::AttributeValue>)>, ApiError> {
    let mut violations = Violations::new();
    let mut out = Vec::new();
    match req.array("TransactStatements")? {
        None => violations.push_null("transactStatements"),
        Some(list) => {
            if list.is_empty() {
                violations.push(
                    "'[]'",
                    "transactStatements",
                    "Member must have length greater than or equal to 1",
                );
            }
            if list.len() > MAX_TRANSACTION_STATEMENTS {
                violations.push_without_value(
                    "transactStatements",
                    "Member must have length less than or equal to 100",
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
                    &format!("transactStatements.{n}.member.statement"),
                );
                let params = parameters(
                    &mut violations,
                    &member,
                    &format!("transactStatements.{n}.member.parameters"),
                )?;
                out.push((text.unwrap_or_default().to_string(), params));
            }
        }
    }
    if let Some(token) = req.str("ClientRequestToken")? {
        if token.is_empty() {
            violations.push(
                &quoted(token),
                "clientRequestToken",
                "Member must have length greater than or equal to 1",
            );
        } else if token.len() > 36 {
            violations.push(
                &quoted(token),
                "clientRequestToken",
                "Member must have length less than or equal to 36",
            );
        }
    }
    check_enum(
        &mut violations,
        req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    violations.into_result()?;
    Ok(out)
}

/// A fingerprint of the request for ClientRequestToken idempotency.
fn fingerprint(req: &Request) -> u64 {
    request_fingerprint(&json!({
        "Operation": "ExecuteTransaction",
        "TransactStatements": req.get("TransactStatements"),
    }))
}

/// The transaction action of a planned write.
fn action(plan: &WritePlan, p: &Prepared) -> TxAction {
    let write = match plan {
        WritePlan::Insert { item, .. } => TxWrite::Put {
            item: item.clone(),
            condition: Some(Condition::AttributeNotExists(Path::attribute(
                p.def.key_schema.hash.name.clone(),
            ))),
        },
        WritePlan::Update {
            key,
            update,
            condition,
            ..
        } => TxWrite::Update {
            key: key.clone(),
            update: update.clone(),
            condition: Some(condition.clone()),
        },
        WritePlan::Delete { key, condition, .. } => TxWrite::Delete {
            key: key.clone(),
            condition: condition.clone(),
        },
        WritePlan::Check { key, condition, .. } => TxWrite::ConditionCheck {
            key: key.clone(),
            condition: condition.clone(),
        },
    };
    TxAction {
        table: plan.table().to_string(),
        write,
        return_old_on_failure: false,
    }
}

/// Rewrites a cancellation so that an INSERT whose condition failed reports
/// `DuplicateItem`, as DynamoDB does.
fn with_duplicate_reasons(mut err: ApiError, inserts: &[bool]) -> ApiError {
    if err.kind != ErrorKind::TransactionCanceled {
        return err;
    }
    let Some(Value::Array(reasons)) = err
        .extra
        .as_mut()
        .and_then(|e| e.get_mut("CancellationReasons"))
    else {
        return err;
    };
    let duplicate = duplicate_item();
    for (reason, insert) in reasons.iter_mut().zip(inserts) {
        if *insert && reason.get("Code") == Some(&json!("ConditionalCheckFailed")) {
            *reason = json!({"Code": "DuplicateItem", "Message": duplicate.message});
        }
    }
    let codes: Vec<String> = reasons
        .iter()
        .map(|r| {
            r.get("Code")
                .and_then(Value::as_str)
                .unwrap_or("None")
                .to_string()
        })
        .collect();
    err.message = format!(
        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
        codes.join(", ")
    );
    err
}

fn capacity_json(capacity: &[(String, f64)], mode: CapacityMode, write: bool) -> Option<Value> {
    if mode == CapacityMode::None {
        return None;
    }
    Some(Value::Array(
        capacity
            .iter()
            .filter_map(|(t, u)| consumed_capacity(t, *u, mode, write))
            .collect(),
    ))
}

pub async fn execute_transaction(api: &Api, req: Request) -> Result<Value, ApiError> {
    let statements = decode(&req)?;
    let capacity = CapacityMode::parse(req.str("ReturnConsumedCapacity")?);
    let mut prepared = Vec::with_capacity(statements.len());
    for (text, params) in &statements {
        prepared.push(prepare(api, text, params, false)?);
    }
    let reads = prepared.iter().filter(|p| p.statement.is_read()).count();
    if reads > 0 && reads < prepared.len() {
        return Err(ApiError::validation(
            "ExecuteTransaction API does not support both read and write operations in the same request.",
        ));
    }
    let mut out = JsonMap::new();
    if reads > 0 {
        let mut gets = Vec::with_capacity(prepared.len());
        let mut plans = Vec::with_capacity(prepared.len());
        for (i, p) in prepared.iter().enumerate() {
            let Plan::Read(read) = &p.plan else {
                continue;
            };
            let (Access::Get(key), true) = (&read.access, read.key_terms_only) else {
                return Err(in_statement(
                    i,
                    "Select statements within ExecuteTransaction must specify the primary key in the where clause.",
                ));
            };
            gets.push((read.table.clone(), key.clone(), None));
            plans.push(read);
        }
        let result = run_get_transaction(api, gets).await?;
        let mut responses = Vec::with_capacity(plans.len());
        for (plan, item) in plans.iter().zip(result.items) {
            let mut entry = JsonMap::new();
            if let Some(item) = item {
                if plan.matches(&item)? {
                    entry.insert("Item".into(), codec::item_to_json(&plan.project(item)));
                }
            }
            responses.push(Value::Object(entry));
        }
        out.insert("Responses".into(), Value::Array(responses));
        if let Some(c) = capacity_json(&result.capacity, capacity, false) {
            out.insert("ConsumedCapacity".into(), c);
        }
        return Ok(Value::Object(out));
    }
    let mut actions = Vec::with_capacity(prepared.len());
    let mut inserts = Vec::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate() {
        let Plan::Write(w) = &p.plan else { continue };
        if w.returning().is_some() {
            return Err(in_statement(
                i,
                "RETURNING clause is not supported in ExecuteTransaction.",
            ));
        }
        inserts.push(matches!(w, WritePlan::Insert { .. }));
        actions.push(action(w, p));
    }
    let token = req
        .str("ClientRequestToken")?
        .map(|t| (t.to_string(), fingerprint(&req)));
    let committed = run_write_transaction(api, actions, token)
        .await
        .map_err(|e| with_duplicate_reasons(e, &inserts))?;
    out.insert("Responses".into(), Value::Array(Vec::new()));
    if let Some(c) = capacity_json(&committed.capacity, capacity, !committed.replayed) {
        out.insert("ConsumedCapacity".into(), c);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_inserts_are_reported_as_duplicate_items() {
        let mut err = ApiError::new(ErrorKind::TransactionCanceled, "x");
        let mut extra = JsonMap::new();
        extra.insert(
            "CancellationReasons".into(),
            json!([
                {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
                {"Code": "None"},
                {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
            ]),
        );
        err.extra = Some(extra);
        let err = with_duplicate_reasons(err, &[true, true, false]);
        assert_eq!(
            err.message,
            "Transaction cancelled, please refer cancellation reasons for specific reasons [DuplicateItem, None, ConditionalCheckFailed]"
        );
        let reasons = &err.extra.unwrap()["CancellationReasons"];
        assert_eq!(reasons[0]["Code"], "DuplicateItem");
        assert_eq!(
            reasons[0]["Message"],
            "Duplicate primary key exists in table"
        );
        assert_eq!(reasons[2]["Code"], "ConditionalCheckFailed");
    }

    #[test]
    fn other_errors_pass_through() {
        let err = with_duplicate_reasons(ApiError::validation("v"), &[true]);
        assert_eq!(err.message, "v");
    }
}
