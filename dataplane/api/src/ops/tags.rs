//! TagResource, UntagResource, ListTagsOfResource.
//!
//! Tags live in the table's definition. A resource ARN must name a table of
//! this endpoint: a malformed ARN, another service, another region or an
//! index ARN is a ValidationException, another account is
//! AccessDeniedException (no resource-based policy grants access), and a
//! missing table is ResourceNotFoundException.

use serde_json::{json, Value};

use super::table_spec::{check_length, check_tags, strings, tags_shape, too_many_tags, MAX_TAGS};
use crate::error::{ApiError, ErrorKind};
use crate::request::{Request, Violations};
use crate::Api;

/// Largest ListTagsOfResource page.
const TAGS_PAGE: usize = 50;

/// Reads ResourceArn, recording shape violations.
fn resource_arn_member<'a>(
    v: &mut Violations,
    req: &'a Request,
) -> Result<Option<&'a str>, ApiError> {
    let arn = req.str("ResourceArn")?;
    match arn {
        None => v.push_null("resourceArn"),
        Some(a) => check_length(v, a, "resourceArn", 1, 1283),
    }
    Ok(arn)
}

/// Resolves a resource ARN to the name of a table of this endpoint, for the
/// operation `op`. Does not check that the table exists.
fn table_of_arn(api: &Api, arn: &str, op: &str) -> Result<String, ApiError> {
    if !arn.starts_with("arn:") {
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: ARNs must start with 'arn:': {arn}"
        )));
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _partition, service, region, account, resource] = parts[..] else {
        return Err(ApiError::validation(format!(
            "Invalid TableArn: Invalid ResourceArn provided as input {arn}"
        )));
    };
    if service != "dynamodb" {
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: Provided Arn is not a DynamoDB resource arn: {arn}"
        )));
    }
    if region != api.config.region {
        return Err(ApiError::validation(format!(
            "Invalid TableArn: Invalid ResourceArn provided as input {arn}"
        )));
    }
    if account != api.config.account_id {
        return Err(ApiError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: arn:aws:iam::{}:root is not authorized to perform: dynamodb:{op} on resource: {arn} because no resource-based policy allows the dynamodb:{op} action",
                api.config.account_id
            ),
        ));
    }
    match resource.strip_prefix("table/") {
        Some(name) if !name.is_empty() && !name.contains('/') => Ok(name.to_string()),
        _ => Err(ApiError::validation(format!(
            "One or more parameter values were invalid: Invalid resource arn provided, only table or stream is accepted. Provided resource arn: {arn}"
        ))),
    }
}

fn resource_not_found(arn: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Requested resource not found: ResourcArn: {arn} not found"),
    )
}

fn not_found_as_resource(arn: &str, e: partita_storage::StorageError) -> ApiError {
    match e {
        partita_storage::StorageError::TableNotFound(_) => resource_not_found(arn),
        other => other.into(),
    }
}

/// Runs a validated change of a table's tags; a change that would leave
/// more than [`MAX_TAGS`] tags is rejected.
fn change_tags<F>(api: &Api, arn: &str, table: &str, mut change: F) -> Result<(), ApiError>
where
    F: FnMut(&mut Vec<(String, String)>),
{
    let mut too_many = false;
    let result = api.store.update_table(table, |def| {
        let mut tags = def.tags.clone();
        change(&mut tags);
        if tags.len() > MAX_TAGS {
            too_many = true;
            return Err(partita_storage::StorageError::InvalidTableDefinition(
                "too many tags".into(),
            ));
        }
        def.tags = tags;
        Ok(())
    });
    if too_many {
        return Err(too_many_tags());
    }
    result
        .map(|_| ())
        .map_err(|e| not_found_as_resource(arn, e))
}

pub async fn tag_resource(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut v = Violations::new();
    let arn = resource_arn_member(&mut v, &req)?;
    let tags = match req.array("Tags")? {
        None => {
            v.push_null("tags");
            Vec::new()
        }
        Some(list) => tags_shape(&mut v, list, "tags")?,
    };
    v.into_result()?;
    let arn = arn.unwrap_or_default();
    let table = table_of_arn(api, arn, "TagResource")?;
    if tags.is_empty() {
        return Err(ApiError::validation(
            "Atleast one Tag needs to be provided as Input.",
        ));
    }
    check_tags(&tags)?;
    change_tags(api, arn, &table, |current| {
        for (key, value) in &tags {
            match current.iter_mut().find(|(k, _)| k == key) {
                Some(existing) => existing.1 = value.clone(),
                None => current.push((key.clone(), value.clone())),
            }
        }
    })?;
    Ok(json!({}))
}

pub async fn untag_resource(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut v = Violations::new();
    let arn = resource_arn_member(&mut v, &req)?;
    let keys = match req.array("TagKeys")? {
        None => {
            v.push_null("tagKeys");
            Vec::new()
        }
        Some(list) => {
            let keys = strings(list)?;
            for (i, key) in keys.iter().enumerate() {
                check_length(&mut v, key, &format!("tagKeys.{}.member", i + 1), 1, 128);
            }
            keys
        }
    };
    v.into_result()?;
    let arn = arn.unwrap_or_default();
    let table = table_of_arn(api, arn, "UntagResource")?;
    if keys.is_empty() {
        return Err(ApiError::validation(
            "Atleast one Tag Key needs to be provided as Input.",
        ));
    }
    change_tags(api, arn, &table, |current| {
        current.retain(|(k, _)| !keys.contains(k));
    })?;
    Ok(json!({}))
}

pub async fn list_tags_of_resource(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut v = Violations::new();
    let arn = resource_arn_member(&mut v, &req)?;
    let next_token = req.str("NextToken")?;
    v.into_result()?;
    let arn = arn.unwrap_or_default();
    let table = table_of_arn(api, arn, "ListTagsOfResource")?;
    let def = api
        .store
        .table(&table)
        .map_err(|e| not_found_as_resource(arn, e))?;
    let start = match next_token {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| ApiError::validation(format!("Invalid NextToken: {token}")))?,
    };
    let rest = def.tags.get(start..).unwrap_or_default();
    let page = rest.get(..rest.len().min(TAGS_PAGE)).unwrap_or_default();
    let tags: Vec<Value> = page
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    let mut out = json!({ "Tags": tags });
    if rest.len() > page.len() {
        out["NextToken"] = Value::from((start + page.len()).to_string());
    }
    Ok(out)
}
