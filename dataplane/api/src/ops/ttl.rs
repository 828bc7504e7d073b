//! UpdateTimeToLive, DescribeTimeToLive.
//!
//! The setting lives in the table's definition; the background sweeper that
//! deletes expired items reads it from there.

use partita_model::TimeToLive;
use serde_json::{json, Value};

use super::describe::{storage_error, table_name_member};
use super::table_spec::{check_length, nested};
use crate::error::ApiError;
use crate::request::{Request, Violations};
use crate::Api;

/// Checks a TTL change against the current setting: the rules DynamoDB
/// applies before accepting it.
fn check_change(
    current: Option<&TimeToLive>,
    enable: bool,
    attribute: &str,
) -> Result<(), ApiError> {
    let active = current.filter(|t| t.enabled);
    match (active, enable) {
        (Some(t), _) if t.attribute_name != attribute => Err(ApiError::validation(format!(
            "TimeToLive is active on a different AttributeName: current AttributeName is {}",
            t.attribute_name
        ))),
        (Some(_), true) => Err(ApiError::validation("TimeToLive is already enabled")),
        (None, false) => Err(ApiError::validation("TimeToLive is already disabled")),
        _ => Ok(()),
    }
}

pub async fn update_time_to_live(api: &Api, req: Request) -> Result<Value, ApiError> {
    let name = table_name_member(api, &req)?;
    let mut v = Violations::new();
    let spec = nested(&req, "TimeToLiveSpecification")?;
    let (enabled, attribute) = match &spec {
        None => {
            v.push_null("timeToLiveSpecification");
            (None, None)
        }
        Some(spec) => {
            let enabled = spec.bool("Enabled")?;
            let attribute = spec.str("AttributeName")?;
            if enabled.is_none() {
                v.push_null("timeToLiveSpecification.enabled");
            }
            match attribute {
                None => v.push_null("timeToLiveSpecification.attributeName"),
                Some(a) => check_length(&mut v, a, "timeToLiveSpecification.attributeName", 1, 255),
            }
            (enabled, attribute)
        }
    };
    v.into_result()?;
    let enable = enabled.unwrap_or(false);
    let attribute = attribute.unwrap_or_default().to_string();
    let mut rejection = None;
    let result = api.store.update_table(&name, |def| {
        if let Err(e) = check_change(def.ttl.as_ref(), enable, &attribute) {
            rejection = Some(e);
            return Err(partita_storage::StorageError::InvalidTableDefinition(
                "time to live change rejected".into(),
            ));
        }
        def.ttl = Some(TimeToLive {
            enabled: enable,
            attribute_name: attribute.clone(),
        });
        Ok(())
    });
    if let Some(e) = rejection {
        return Err(e);
    }
    result.map_err(|e| storage_error(&name, e))?;
    crate::replication::manage::propagate(api, "UpdateTimeToLive", &name, &req);
    Ok(json!({
        "TimeToLiveSpecification": {"Enabled": enable, "AttributeName": attribute}
    }))
}

pub async fn describe_time_to_live(api: &Api, req: Request) -> Result<Value, ApiError> {
    let name = table_name_member(api, &req)?;
    let def = api
        .store
        .table(&name)
        .map_err(|e| storage_error(&name, e))?;
    let description = match def.ttl.as_ref().filter(|t| t.enabled) {
        Some(t) => json!({"TimeToLiveStatus": "ENABLED", "AttributeName": t.attribute_name}),
        None => json!({"TimeToLiveStatus": "DISABLED"}),
    };
    Ok(json!({ "TimeToLiveDescription": description }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(enabled: bool, name: &str) -> TimeToLive {
        TimeToLive {
            enabled,
            attribute_name: name.into(),
        }
    }

    #[test]
    fn changes_follow_dynamodb_rules() {
        assert!(check_change(None, true, "ttl").is_ok());
        assert!(check_change(Some(&ttl(false, "old")), true, "ttl").is_ok());
        assert!(check_change(Some(&ttl(true, "ttl")), false, "ttl").is_ok());
        assert_eq!(
            check_change(Some(&ttl(true, "ttl")), true, "ttl")
                .unwrap_err()
                .message,
            "TimeToLive is already enabled"
        );
        assert_eq!(
            check_change(None, false, "ttl").unwrap_err().message,
            "TimeToLive is already disabled"
        );
        assert_eq!(
            check_change(Some(&ttl(true, "exp")), true, "ttl")
                .unwrap_err()
                .message,
            "TimeToLive is active on a different AttributeName: current AttributeName is exp"
        );
    }
}
