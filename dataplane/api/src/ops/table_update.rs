//! UpdateTable: decoding, the request-level rules (what may be combined in
//! one call), and the application of a change to a table's definition with
//! the rules that depend on the table's current state.
//!
//! Pure: [`parse_update_table`] checks the request on its own,
//! [`apply_update`] checks it against a definition and changes it.

use partita_model::{
    AttributeDefinition, BillingMode, IndexDefinition, ProvisionedThroughput, StreamSpecification,
    TableDefinition,
};

use super::describe::{iso_timestamp, TableStatus};
use super::table_spec::{
    attribute_definitions_shape, check_enum, check_global_index, index_shape, invalid,
    invalid_table_class, nested, stream_shape, structures, throughput_shape, IndexRequest,
    StreamRequest, TABLE_CLASSES,
};
use crate::error::{ApiError, ErrorKind};
use crate::request::{check_name, Request, Violations};

/// One entry of GlobalSecondaryIndexUpdates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IndexUpdate {
    Create(IndexRequest),
    Update {
        name: String,
        throughput: Option<ProvisionedThroughput>,
    },
    Delete {
        name: String,
    },
}

impl IndexUpdate {
    fn name(&self) -> &str {
        match self {
            IndexUpdate::Create(IndexRequest { name, .. })
            | IndexUpdate::Update { name, .. }
            | IndexUpdate::Delete { name } => name,
        }
    }
}

/// An UpdateTable request that passed the request-level checks.
#[derive(Clone, Debug, Default)]
pub(crate) struct UpdateTableRequest {
    pub billing_mode: Option<BillingMode>,
    pub throughput: Option<ProvisionedThroughput>,
    pub stream: Option<StreamRequest>,
    pub table_class: Option<String>,
    pub deletion_protection: Option<bool>,
    pub index_updates: Vec<IndexUpdate>,
    /// AttributeDefinitions: consulted only by a GSI Create.
    pub attributes: Option<Vec<(String, String)>>,
    /// SSESpecification, OnDemandThroughput or WarmThroughput was given:
    /// accepted, and without effect on this server.
    pub ignored_settings: bool,
    /// ReplicaUpdates (global tables version 2019.11.21): then the only
    /// change of the request.
    pub replica_updates: Option<Vec<ReplicaUpdate>>,
}

pub(crate) use crate::replication::manage::ReplicaUpdate;

const NOTHING_TO_UPDATE: &str = "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn, MultiRegionConsistency, DeletionProtectionEnabled, OnDemandThroughput, WarmThroughput or TableClass is required";

fn index_updates_shape(
    v: &mut Violations,
    req: &Request,
) -> Result<Option<Vec<Option<IndexUpdate>>>, ApiError> {
    let Some(list) = req.array("GlobalSecondaryIndexUpdates")? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in structures(list)?.iter().enumerate() {
        let at = format!("globalSecondaryIndexUpdates.{}.member", i + 1);
        let create = nested(entry, "Create")?;
        let update = nested(entry, "Update")?;
        let delete = nested(entry, "Delete")?;
        let actions = [&create, &update, &delete]
            .iter()
            .filter(|a| a.is_some())
            .count();
        if actions > 1 {
            return Err(invalid(
                "Only one global secondary index action is allowed per GlobalSecondaryIndexUpdate object",
            ));
        }
        let parsed = if let Some(c) = create {
            Some(IndexUpdate::Create(index_shape(
                v,
                &c,
                &format!("{at}.create"),
                true,
            )?))
        } else if let Some(u) = update {
            let name = u.str("IndexName")?;
            check_name(v, name, &format!("{at}.update.indexName"), 3, 255);
            let throughput = throughput_shape(
                v,
                &u,
                "ProvisionedThroughput",
                &format!("{at}.update.provisionedThroughput"),
            )?;
            Some(IndexUpdate::Update {
                name: name.unwrap_or_default().to_string(),
                throughput,
            })
        } else if let Some(d) = delete {
            let name = d.str("IndexName")?;
            check_name(v, name, &format!("{at}.delete.indexName"), 3, 255);
            Some(IndexUpdate::Delete {
                name: name.unwrap_or_default().to_string(),
            })
        } else {
            None
        };
        out.push(parsed);
    }
    Ok(Some(out))
}

/// Decodes an UpdateTable request (all but TableName, which the caller
/// reads first) and applies the rules that need no table.
pub(crate) fn parse_update_table(req: &Request) -> Result<UpdateTableRequest, ApiError> {
    let mut v = Violations::new();
    let attributes = attribute_definitions_shape(&mut v, req, false)?;
    let billing = req.str("BillingMode")?;
    check_enum(
        &mut v,
        billing,
        "billingMode",
        &["PROVISIONED", "PAY_PER_REQUEST"],
    );
    let throughput = throughput_shape(
        &mut v,
        req,
        "ProvisionedThroughput",
        "provisionedThroughput",
    )?;
    let index_updates = index_updates_shape(&mut v, req)?;
    let stream = stream_shape(&mut v, req)?;
    let table_class = req.str("TableClass")?.map(str::to_string);
    let deletion_protection = req.bool("DeletionProtectionEnabled")?;
    v.into_result()?;

    let sse = req.has("SSESpecification");
    let replicas = req.has("ReplicaUpdates");
    let on_demand = req.has("OnDemandThroughput");
    let warm = req.has("WarmThroughput");
    let has_index_updates = index_updates.as_ref().is_some_and(|u| !u.is_empty());
    let anything = billing.is_some()
        || throughput.is_some()
        || stream.is_some()
        || table_class.is_some()
        || deletion_protection.is_some()
        || has_index_updates
        || sse
        || replicas
        || on_demand
        || warm;
    if !anything {
        return Err(ApiError::validation(NOTHING_TO_UPDATE));
    }
    if index_updates.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid("List of GlobalSecondaryIndexUpdates is empty"));
    }
    let count = [
        billing.is_some(),
        throughput.is_some(),
        stream.is_some(),
        table_class.is_some(),
        deletion_protection.is_some(),
        has_index_updates,
        sse,
        replicas,
        on_demand,
        warm,
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if sse && count > 1 {
        return Err(invalid(
            "Server-Side Encryption modification must be the only operation in the request",
        ));
    }
    if table_class.is_some() && count > 1 {
        return Err(invalid(
            "TableClass modification must be the only operation in the request",
        ));
    }
    if deletion_protection.is_some() && count > 1 {
        return Err(invalid(
            "DeletionProtection modification must be the only operation in the request",
        ));
    }
    if replicas && count > 1 {
        return Err(invalid(
            "Replica modification must be the only operation in the request",
        ));
    }
    if replicas {
        return Ok(UpdateTableRequest {
            billing_mode: None,
            throughput: None,
            stream: None,
            table_class: None,
            deletion_protection: None,
            index_updates: Vec::new(),
            attributes,
            ignored_settings: false,
            replica_updates: Some(replica_updates_shape(req)?),
        });
    }
    let updates_iops = throughput.is_some() || billing == Some("PROVISIONED");
    if stream.is_some() && updates_iops {
        return Err(invalid(
            "You cannot modify stream status while updating table IOPS",
        ));
    }
    let index_updates: Vec<IndexUpdate> = match index_updates {
        None => Vec::new(),
        Some(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for entry in entries {
                let Some(entry) = entry else {
                    return Err(invalid(
                        "One of GlobalSecondaryIndexUpdate.Update, GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Delete must not be null",
                    ));
                };
                if out.iter().any(|u: &IndexUpdate| u.name() == entry.name()) {
                    return Err(invalid(format!(
                        "Only one global secondary index update per index is allowed simultaneously. Index: {}",
                        entry.name()
                    )));
                }
                out.push(entry);
            }
            out
        }
    };
    let online = index_updates
        .iter()
        .filter(|u| !matches!(u, IndexUpdate::Update { .. }))
        .count();
    if online > 1 {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            "Only 1 online index can be created or deleted simultaneously per table",
        ));
    }
    let creates_or_deletes = online > 0;
    if creates_or_deletes && throughput.is_some() {
        return Err(invalid(
            "You cannot create or delete index while updating table IOPS",
        ));
    }
    if creates_or_deletes && stream.is_some() {
        return Err(invalid(
            "You cannot create or delete index while changing stream status",
        ));
    }
    match &stream {
        Some(StreamRequest {
            enabled: true,
            view_type: None,
        }) => {
            return Err(invalid(
                "If stream is being enabled then UpdateViewType is required",
            ))
        }
        Some(StreamRequest {
            enabled: false,
            view_type: Some(_),
        }) => {
            return Err(invalid(
                "If stream is being disabled, then UpdateViewType must not be specified",
            ))
        }
        _ => {}
    }
    let billing_mode = match billing {
        Some("PAY_PER_REQUEST") => Some(BillingMode::PayPerRequest),
        Some(_) => Some(BillingMode::Provisioned),
        None => None,
    };
    if billing_mode == Some(BillingMode::PayPerRequest) && throughput.is_some() {
        return Err(invalid(
            "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
        ));
    }
    if let Some(class) = &table_class {
        if !TABLE_CLASSES.contains(&class.as_str()) {
            return Err(invalid_table_class());
        }
    }
    Ok(UpdateTableRequest {
        billing_mode,
        throughput,
        stream,
        table_class,
        deletion_protection,
        index_updates,
        attributes,
        ignored_settings: sse || on_demand || warm,
        replica_updates: None,
    })
}

const MAX_GLOBAL_INDEXES: usize = 20;

/// Decodes `ReplicaUpdates`: each entry one of `Create` or `Delete` with a
/// `RegionName` (`Update` — per-replica overrides — is not supported).
fn replica_updates_shape(req: &Request) -> Result<Vec<ReplicaUpdate>, ApiError> {
    let empty = Vec::new();
    let list = req.array("ReplicaUpdates")?.unwrap_or(&empty);
    if list.is_empty() {
        return Err(invalid("List of ReplicaUpdates is empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for entry in structures(list)? {
        let create = nested(&entry, "Create")?;
        let update = nested(&entry, "Update")?;
        let delete = nested(&entry, "Delete")?;
        let actions = [&create, &update, &delete]
            .iter()
            .filter(|a| a.is_some())
            .count();
        if actions != 1 {
            return Err(invalid(
                "One and only one of ReplicationGroupUpdate.Create, ReplicationGroupUpdate.Update, ReplicationGroupUpdate.Delete must be specified",
            ));
        }
        if update.is_some() {
            return Err(invalid(
                "ReplicaUpdates Update (per-replica settings) is not supported by this server",
            ));
        }
        let (action, create) = match (create, delete) {
            (Some(c), _) => (c, true),
            (None, Some(d)) => (d, false),
            (None, None) => continue,
        };
        let region = action.str("RegionName")?.unwrap_or_default().to_string();
        if region.is_empty() {
            return Err(invalid(
                "1 validation error detected: Value null at 'replicaUpdates.member.regionName' failed to satisfy constraint: Member must not be null",
            ));
        }
        out.push(if create {
            ReplicaUpdate::Create(region)
        } else {
            ReplicaUpdate::Delete(region)
        });
    }
    Ok(out)
}

fn index_not_found(index: &str, table: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Requested resource not found: Index: {index} for table: {table} not found"),
    )
}

/// An online index change that UpdateTable hands to the storage after the
/// definition change (the storage backfills or drops the index itself).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IndexAction {
    Create(IndexDefinition),
    Delete(String),
}

fn unchanged_throughput(
    current: ProvisionedThroughput,
    requested: ProvisionedThroughput,
) -> String {
    format!(
        "The provisioned throughput for the table will not change. The requested value equals the current value. Current ReadCapacityUnits provisioned for the table: {}. Requested ReadCapacityUnits: {}. Current WriteCapacityUnits provisioned for the table: {}. Requested WriteCapacityUnits: {}. Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.",
        current.read_capacity_units,
        requested.read_capacity_units,
        current.write_capacity_units,
        requested.write_capacity_units
    )
}

/// Checks `req` against the table's current definition and applies it.
/// Returns the status the UpdateTable response shows: UPDATING for changes
/// DynamoDB applies asynchronously, ACTIVE for deletion protection alone.
pub(crate) fn apply_update(
    def: &mut TableDefinition,
    req: &UpdateTableRequest,
    now_ms: u64,
) -> Result<(TableStatus, Option<IndexAction>), ApiError> {
    let mut index_action = None;
    let target = req.billing_mode.unwrap_or(def.billing_mode);
    let switching = target != def.billing_mode;
    match target {
        BillingMode::Provisioned => {
            if switching && req.throughput.is_none() {
                return Err(invalid(
                    "ProvisionedThroughput must be specified when BillingMode is PROVISIONED",
                ));
            }
            if switching {
                for index in &def.global_indexes {
                    let covered = req.index_updates.iter().any(|u| {
                        matches!(u, IndexUpdate::Update { name, throughput: Some(_) } if *name == index.name)
                    });
                    if !covered {
                        return Err(invalid(format!(
                            "ProvisionedThroughput must be specified for index: {}",
                            index.name
                        )));
                    }
                }
            }
            if let (false, Some(requested), Some(current)) =
                (switching, req.throughput, def.throughput)
            {
                if requested == current {
                    return Err(ApiError::validation(unchanged_throughput(
                        current, requested,
                    )));
                }
            }
        }
        BillingMode::PayPerRequest => {
            if req.throughput.is_some() {
                return Err(invalid(
                    "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
                ));
            }
        }
    }
    for update in &req.index_updates {
        match update {
            IndexUpdate::Create(index) => {
                let exists = def
                    .global_indexes
                    .iter()
                    .chain(&def.local_indexes)
                    .any(|i| i.name == index.name);
                if exists {
                    return Err(ApiError::validation(
                        "Attempting to create an index which already exists",
                    ));
                }
                let Some(given) = &req.attributes else {
                    return Err(invalid(format!(
                        "AttributeDefinitions is not specified for index: {}",
                        index.name
                    )));
                };
                let mut attributes = given.clone();
                for a in &def.attribute_definitions {
                    if !attributes.iter().any(|(n, _)| *n == a.name) {
                        attributes.push((a.name.clone(), a.scalar_type.as_str().to_string()));
                    }
                }
                match (target, index.throughput) {
                    (BillingMode::Provisioned, None) => {
                        return Err(invalid(format!(
                            "ProvisionedThroughput must be specified for index: {}",
                            index.name
                        )))
                    }
                    (BillingMode::PayPerRequest, Some(_)) => {
                        return Err(invalid(format!(
                            "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified for index: {} when BillingMode is PAY_PER_REQUEST",
                            index.name
                        )))
                    }
                    _ => {}
                }
                let created = check_global_index(index, &attributes, target)?;
                if def.global_indexes.len() >= MAX_GLOBAL_INDEXES {
                    return Err(ApiError::new(
                        ErrorKind::LimitExceeded,
                        format!(
                            "GlobalSecondaryIndex count exceeds the per-table limit of {MAX_GLOBAL_INDEXES}"
                        ),
                    ));
                }
                for key in created.key_schema.attributes() {
                    if !def.attribute_definitions.iter().any(|a| a.name == key.name) {
                        def.attribute_definitions.push(AttributeDefinition {
                            name: key.name.clone(),
                            scalar_type: key.scalar_type,
                        });
                    }
                }
                index_action = Some(IndexAction::Create(created));
            }
            IndexUpdate::Delete { name } => {
                if def.local_indexes.iter().any(|i| i.name == *name) {
                    return Err(ApiError::validation(format!(
                        "Cannot delete an index that is not a GlobalSecondaryIndex: {name}"
                    )));
                }
                if !def.global_indexes.iter().any(|i| i.name == *name) {
                    return Err(index_not_found(name, &def.name));
                }
                index_action = Some(IndexAction::Delete(name.clone()));
            }
            IndexUpdate::Update { name, throughput } => {
                if def.local_indexes.iter().any(|i| i.name == *name) {
                    return Err(ApiError::validation(format!(
                        "Cannot update an index that is not a GlobalSecondaryIndex: {name}"
                    )));
                }
                if !def.global_indexes.iter().any(|i| i.name == *name) {
                    return Err(index_not_found(name, &def.name));
                }
                match (target, throughput) {
                    (BillingMode::PayPerRequest, Some(_)) => {
                        return Err(invalid(format!(
                            "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified for index: {name} when BillingMode is PAY_PER_REQUEST"
                        )))
                    }
                    (BillingMode::Provisioned, None) => {
                        return Err(invalid(format!(
                            "Both ReadCapacityUnits and WriteCapacityUnits must be specified for index: {name}"
                        )))
                    }
                    _ => {}
                }
            }
        }
    }
    let current_stream_enabled = def.stream.as_ref().is_some_and(|s| s.enabled);
    match &req.stream {
        Some(s) if s.enabled && current_stream_enabled => {
            return Err(ApiError::validation(format!(
                "Table already has an enabled stream: TableName: {}",
                def.name
            )))
        }
        Some(s) if !s.enabled && !current_stream_enabled => {
            return Err(ApiError::validation(format!(
                "Table has no stream to disable: TableName: {}",
                def.name
            )))
        }
        _ => {}
    }

    // Every rule passed: apply.
    if switching {
        def.billing_mode = target;
        match target {
            BillingMode::PayPerRequest => {
                def.throughput = None;
                def.pay_per_request_since_ms = Some(now_ms);
                for index in &mut def.global_indexes {
                    index.throughput = None;
                }
            }
            BillingMode::Provisioned => {}
        }
    }
    if let Some(t) = req.throughput {
        def.throughput = Some(t);
    }
    for update in &req.index_updates {
        if let IndexUpdate::Update {
            name,
            throughput: Some(t),
        } = update
        {
            for index in def.global_indexes.iter_mut().filter(|i| i.name == *name) {
                index.throughput = Some(*t);
            }
        }
    }
    if let Some(s) = &req.stream {
        if s.enabled {
            def.stream = Some(StreamSpecification {
                enabled: true,
                view_type: s.view_type.clone(),
            });
            def.stream_label = Some(iso_timestamp(now_ms));
        } else if let Some(current) = def.stream.as_mut() {
            current.enabled = false;
        }
    }
    if let Some(class) = &req.table_class {
        def.table_class = Some(class.clone());
    }
    if let Some(protect) = req.deletion_protection {
        def.deletion_protection = protect;
    }
    let asynchronous = req.billing_mode.is_some()
        || req.throughput.is_some()
        || req.stream.is_some()
        || req.table_class.is_some()
        || !req.index_updates.is_empty()
        || req.ignored_settings;
    let status = if asynchronous {
        TableStatus::Updating
    } else {
        TableStatus::Active
    };
    Ok((status, index_action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_model::{IndexDefinition, KeyAttribute, KeySchema, Projection, ScalarType};
    use serde_json::{json, Value};

    fn request(body: Value) -> Request {
        match body {
            Value::Object(m) => Request::from_object(m),
            _ => Request::default(),
        }
    }

    fn parse_err(body: Value) -> String {
        match parse_update_table(&request(body)) {
            Ok(r) => panic!("expected an error, got {r:?}"),
            Err(e) => e.message,
        }
    }

    fn pt(r: i64, w: i64) -> ProvisionedThroughput {
        ProvisionedThroughput {
            read_capacity_units: r,
            write_capacity_units: w,
        }
    }

    fn table(billing: BillingMode) -> TableDefinition {
        TableDefinition {
            revision: 0,
            name: "t1".into(),
            table_id: "id".into(),
            key_schema: KeySchema {
                hash: KeyAttribute {
                    name: "pk".into(),
                    scalar_type: ScalarType::S,
                },
                range: None,
            },
            attribute_definitions: vec![],
            billing_mode: billing,
            throughput: (billing == BillingMode::Provisioned).then_some(pt(5, 5)),
            created_at_ms: 0,
            pay_per_request_since_ms: None,
            stream: None,
            stream_label: None,
            ttl: None,
            tags: vec![],
            table_class: None,
            deletion_protection: false,
            local_indexes: vec![],
            global_indexes: vec![],
            partitions: 1,
            on_demand: None,
        }
    }

    fn apply(def: &mut TableDefinition, body: Value) -> Result<TableStatus, ApiError> {
        let req = parse_update_table(&request(body))?;
        apply_update(def, &req, 5_000).map(|(status, _)| status)
    }

    #[test]
    fn request_level_rules() {
        assert_eq!(parse_err(json!({"TableName": "t1"})), NOTHING_TO_UPDATE);
        assert_eq!(
            parse_err(
                json!({"AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}]})
            ),
            NOTHING_TO_UPDATE
        );
        assert_eq!(
            parse_err(json!({"BillingMode": "PAY_PER_REQUEST", "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}})),
            "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
        );
        assert_eq!(
            parse_err(json!({"ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 5}})),
            "1 validation error detected: Value '0' at 'provisionedThroughput.readCapacityUnits' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        assert_eq!(
            parse_err(json!({"DeletionProtectionEnabled": true, "TableClass": "STANDARD"})),
            "One or more parameter values were invalid: TableClass modification must be the only operation in the request"
        );
        assert_eq!(
            parse_err(json!({"DeletionProtectionEnabled": true, "BillingMode": "PAY_PER_REQUEST"})),
            "One or more parameter values were invalid: DeletionProtection modification must be the only operation in the request"
        );
        assert_eq!(
            parse_err(json!({"StreamSpecification": {"StreamEnabled": true}})),
            "One or more parameter values were invalid: If stream is being enabled then UpdateViewType is required"
        );
        assert_eq!(
            parse_err(json!({"StreamSpecification": {"StreamEnabled": false, "StreamViewType": "KEYS_ONLY"}})),
            "One or more parameter values were invalid: If stream is being disabled, then UpdateViewType must not be specified"
        );
        assert_eq!(
            parse_err(json!({"StreamSpecification": {"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"}, "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6}})),
            "One or more parameter values were invalid: You cannot modify stream status while updating table IOPS"
        );
        assert_eq!(
            parse_err(json!({"TableClass": "GLACIER"})),
            "Invalid table-class parameter provided. Please try again with a valid table-class value: [STANDARD, STANDARD_INFREQUENT_ACCESS]."
        );
        assert_eq!(
            parse_err(json!({"GlobalSecondaryIndexUpdates": [], "DeletionProtectionEnabled": true})),
            "One or more parameter values were invalid: List of GlobalSecondaryIndexUpdates is empty"
        );
        assert_eq!(
            parse_err(json!({"GlobalSecondaryIndexUpdates": []})),
            NOTHING_TO_UPDATE
        );
        assert_eq!(
            parse_err(json!({"GlobalSecondaryIndexUpdates": [{}]})),
            "One or more parameter values were invalid: One of GlobalSecondaryIndexUpdate.Update, GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Delete must not be null"
        );
    }

    #[test]
    fn throughput_and_billing_changes() {
        let mut def = table(BillingMode::Provisioned);
        let status = apply(
            &mut def,
            json!({"ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 10}}),
        )
        .unwrap();
        assert_eq!(status, TableStatus::Updating);
        assert_eq!(def.throughput, Some(pt(10, 10)));
        let err = apply(&mut def, json!({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 10}})).unwrap_err();
        assert_eq!(err.message, "The provisioned throughput for the table will not change. The requested value equals the current value. Current ReadCapacityUnits provisioned for the table: 10. Requested ReadCapacityUnits: 10. Current WriteCapacityUnits provisioned for the table: 10. Requested WriteCapacityUnits: 10. Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.");

        apply(&mut def, json!({"BillingMode": "PAY_PER_REQUEST"})).unwrap();
        assert_eq!(def.billing_mode, BillingMode::PayPerRequest);
        assert_eq!(def.throughput, None);
        assert_eq!(def.pay_per_request_since_ms, Some(5_000));
        apply(&mut def, json!({"BillingMode": "PAY_PER_REQUEST"})).unwrap();
        let err = apply(
            &mut def,
            json!({"ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}),
        )
        .unwrap_err();
        assert_eq!(err.message, "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
        let err = apply(&mut def, json!({"BillingMode": "PROVISIONED"})).unwrap_err();
        assert_eq!(err.message, "One or more parameter values were invalid: ProvisionedThroughput must be specified when BillingMode is PROVISIONED");
        apply(&mut def, json!({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}})).unwrap();
        assert_eq!(def.billing_mode, BillingMode::Provisioned);
        assert_eq!(def.throughput, Some(pt(3, 4)));
    }

    #[test]
    fn switching_to_provisioned_needs_every_gsi() {
        let mut def = table(BillingMode::PayPerRequest);
        def.global_indexes.push(IndexDefinition {
            name: "gx1".into(),
            key_schema: def.key_schema.clone(),
            projection: Projection::All,
            throughput: None,
        });
        let err = apply(&mut def, json!({"BillingMode": "PROVISIONED", "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}})).unwrap_err();
        assert_eq!(err.message, "One or more parameter values were invalid: ProvisionedThroughput must be specified for index: gx1");
        apply(&mut def, json!({
            "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4},
            "GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "gx1", "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 2}}}],
        }))
        .unwrap();
        assert_eq!(def.global_indexes[0].throughput, Some(pt(2, 2)));
        let req = parse_update_table(&request(
            json!({"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "gx1"}}]}),
        ))
        .unwrap();
        let (status, action) = apply_update(&mut def, &req, 5_000).unwrap();
        assert_eq!(status, TableStatus::Updating);
        assert_eq!(action, Some(IndexAction::Delete("gx1".into())));
    }

    #[test]
    fn gsi_create_and_delete_are_validated() {
        let mut def = table(BillingMode::PayPerRequest);
        def.global_indexes.push(IndexDefinition {
            name: "gsi1".into(),
            key_schema: def.key_schema.clone(),
            projection: Projection::All,
            throughput: None,
        });
        let create = |name: &str| json!({"Create": {"IndexName": name, "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}});
        let err = apply(&mut def, json!({"GlobalSecondaryIndexUpdates": [create("gsi1")], "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}]})).unwrap_err();
        assert_eq!(
            err.message,
            "Attempting to create an index which already exists"
        );
        let err = apply(
            &mut def,
            json!({"GlobalSecondaryIndexUpdates": [create("gsi2")]}),
        )
        .unwrap_err();
        assert_eq!(err.message, "One or more parameter values were invalid: AttributeDefinitions is not specified for index: gsi2");
        let err = apply(&mut def, json!({"GlobalSecondaryIndexUpdates": [create("gsi2")], "AttributeDefinitions": [{"AttributeName": "x", "AttributeType": "S"}]})).unwrap_err();
        assert!(
            err.message
                .contains("Some index key attributes are not defined"),
            "{}",
            err.message
        );
        let err = apply(
            &mut def,
            json!({"GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "nope"}}]}),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ResourceNotFound);
        let err = parse_err(
            json!({"GlobalSecondaryIndexUpdates": [create("gsi2"), {"Delete": {"IndexName": "gsi1"}}]}),
        );
        assert_eq!(
            err,
            "Only 1 online index can be created or deleted simultaneously per table"
        );
        let err = parse_err(
            json!({"GlobalSecondaryIndexUpdates": [{"Create": {"IndexName": "gsi3", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}}]}),
        );
        assert_eq!(err, "1 validation error detected: Value null at 'globalSecondaryIndexUpdates.1.member.create.projection' failed to satisfy constraint: Member must not be null");
    }

    #[test]
    fn streams_enable_and_disable() {
        let mut def = table(BillingMode::PayPerRequest);
        let err = apply(
            &mut def,
            json!({"StreamSpecification": {"StreamEnabled": false}}),
        )
        .unwrap_err();
        assert_eq!(err.message, "Table has no stream to disable: TableName: t1");
        apply(
            &mut def,
            json!({"StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"}}),
        )
        .unwrap();
        assert!(def.stream.as_ref().unwrap().enabled);
        assert_eq!(def.stream_label.as_deref(), Some("1970-01-01T00:00:05.000"));
        let err = apply(
            &mut def,
            json!({"StreamSpecification": {"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"}}),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "Table already has an enabled stream: TableName: t1"
        );
        apply(
            &mut def,
            json!({"StreamSpecification": {"StreamEnabled": false}}),
        )
        .unwrap();
        assert!(!def.stream.as_ref().unwrap().enabled);
        assert!(def.stream_label.is_some());
    }

    #[test]
    fn deletion_protection_is_synchronous() {
        let mut def = table(BillingMode::PayPerRequest);
        let status = apply(&mut def, json!({"DeletionProtectionEnabled": true})).unwrap();
        assert_eq!(status, TableStatus::Active);
        assert!(def.deletion_protection);
        apply(
            &mut def,
            json!({"TableClass": "STANDARD_INFREQUENT_ACCESS"}),
        )
        .unwrap();
        assert_eq!(
            def.table_class.as_deref(),
            Some("STANDARD_INFREQUENT_ACCESS")
        );
    }
}
