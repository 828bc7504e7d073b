//! Decoding and validating table specifications: the members of CreateTable
//! (attribute definitions, key schema, secondary indexes, billing mode and
//! throughput, stream specification, tags, table class) and the pieces of
//! them that UpdateTable and TagResource reuse.
//!
//! Validation runs in DynamoDB's two stages. First the shape stage: every
//! member is checked against its declared constraints (not null, lengths,
//! enums, minimum values) and all violations are reported together as
//! "N validation errors detected: ...". Then the semantic stage, which stops
//! at the first broken rule, in the order DynamoDB checks them: billing mode
//! versus throughput, attribute definitions versus the table key, empty
//! index lists, unused attribute definitions, local indexes, global indexes,
//! stream specification, table class, tags.
//!
//! Pure: no store access; [`build_definition`] turns a validated request
//! into the [`TableDefinition`] the storage layer keeps.

use std::collections::HashSet;
use std::fmt::Display;

use partita_model::{
    AttributeDefinition, BillingMode, IndexDefinition, KeyAttribute, KeySchema, Projection,
    ProvisionedThroughput, ScalarType, StreamSpecification, TableDefinition,
};
use serde_json::Value;

use super::describe::iso_timestamp;
use crate::error::ApiError;
use crate::request::{check_name, quoted, wrong_type, Request, Violations};

/// The prefix of DynamoDB's semantic validation messages.
pub(crate) const INVALID: &str = "One or more parameter values were invalid: ";

/// Largest number of tags on one resource.
pub(crate) const MAX_TAGS: usize = 50;
const MAX_LOCAL_INDEXES: usize = 5;
const MAX_GLOBAL_INDEXES: usize = 20;
const MAX_NON_KEY_ATTRIBUTES: usize = 20;

/// The TableClass values DynamoDB accepts.
pub(crate) const TABLE_CLASSES: [&str; 2] = ["STANDARD", "STANDARD_INFREQUENT_ACCESS"];
const STREAM_VIEW_TYPES: [&str; 4] = ["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"];

/// A ValidationException with the "One or more parameter values were
/// invalid: " prefix.
pub(crate) fn invalid(message: impl Display) -> ApiError {
    ApiError::validation(format!("{INVALID}{message}"))
}

/// The error for an unknown TableClass value.
pub(crate) fn invalid_table_class() -> ApiError {
    ApiError::validation(
        "Invalid table-class parameter provided. Please try again with a valid table-class value: [STANDARD, STANDARD_INFREQUENT_ACCESS].",
    )
}

/// Returns the nested object member `name` as its own request.
pub(crate) fn nested(req: &Request, name: &str) -> Result<Option<Request>, ApiError> {
    Ok(req.object(name)?.map(|m| Request::from_object(m.clone())))
}

/// Returns the elements of a list of structures as requests.
pub(crate) fn structures(list: &[Value]) -> Result<Vec<Request>, ApiError> {
    list.iter()
        .map(|v| match v {
            Value::Object(m) => Ok(Request::from_object(m.clone())),
            other => Err(wrong_type(other, "Structure")),
        })
        .collect()
}

/// Returns the elements of a list of strings.
pub(crate) fn strings(list: &[Value]) -> Result<Vec<String>, ApiError> {
    list.iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong_type(other, "String")),
        })
        .collect()
}

/// Records length violations of a string member.
pub(crate) fn check_length(v: &mut Violations, s: &str, path: &str, min: usize, max: usize) {
    let len = s.chars().count();
    if len < min {
        v.push(
            &quoted(s),
            path,
            &format!("Member must have length greater than or equal to {min}"),
        );
    }
    if len > max {
        v.push(
            &quoted(s),
            path,
            &format!("Member must have length less than or equal to {max}"),
        );
    }
}

/// Records a violation when `value` is not one of `allowed`.
pub(crate) fn check_enum(v: &mut Violations, value: Option<&str>, path: &str, allowed: &[&str]) {
    if let Some(s) = value.filter(|s| !allowed.contains(s)) {
        v.push(
            &quoted(s),
            path,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        );
    }
}

/// One element of a KeySchema as the request gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyElement {
    pub name: String,
    pub key_type: String,
}

fn render_key_list(keys: &[(Option<String>, Option<String>)]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|(n, t)| {
            format!(
                "KeySchemaElement(attributeName={}, keyType={})",
                n.as_deref().unwrap_or("null"),
                t.as_deref().unwrap_or("null")
            )
        })
        .collect();
    format!("'[{}]'", parts.join(", "))
}

/// Decodes a KeySchema member (list of 1 or 2 elements).
fn key_schema_shape(
    v: &mut Violations,
    req: &Request,
    member: &str,
    path: &str,
) -> Result<Vec<KeyElement>, ApiError> {
    let Some(list) = req.array(member)? else {
        v.push_null(path);
        return Ok(Vec::new());
    };
    let mut raw = Vec::with_capacity(list.len());
    for element in structures(list)? {
        raw.push((
            element.str("AttributeName")?.map(str::to_string),
            element.str("KeyType")?.map(str::to_string),
        ));
    }
    if raw.is_empty() {
        v.push(
            "'[]'",
            path,
            "Member must have length greater than or equal to 1",
        );
    }
    if raw.len() > 2 {
        v.push(
            &render_key_list(&raw),
            path,
            "Member must have length less than or equal to 2",
        );
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, (name, key_type)) in raw.into_iter().enumerate() {
        let at = format!("{path}.{}.member", i + 1);
        match &name {
            None => v.push_null(&format!("{at}.attributeName")),
            Some(n) => check_length(v, n, &format!("{at}.attributeName"), 1, 255),
        }
        match &key_type {
            None => v.push_null(&format!("{at}.keyType")),
            Some(t) => check_enum(v, Some(t), &format!("{at}.keyType"), &["HASH", "RANGE"]),
        }
        out.push(KeyElement {
            name: name.unwrap_or_default(),
            key_type: key_type.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Decodes an AttributeDefinitions member into (name, type) pairs.
pub(crate) fn attribute_definitions_shape(
    v: &mut Violations,
    req: &Request,
    required: bool,
) -> Result<Option<Vec<(String, String)>>, ApiError> {
    let Some(list) = req.array("AttributeDefinitions")? else {
        if required {
            v.push_null("attributeDefinitions");
        }
        return Ok(None);
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, element) in structures(list)?.iter().enumerate() {
        let at = format!("attributeDefinitions.{}.member", i + 1);
        let name = element.str("AttributeName")?;
        let scalar = element.str("AttributeType")?;
        match name {
            None => v.push_null(&format!("{at}.attributeName")),
            Some(n) => check_length(v, n, &format!("{at}.attributeName"), 1, 255),
        }
        match scalar {
            None => v.push_null(&format!("{at}.attributeType")),
            Some(t) => check_enum(v, Some(t), &format!("{at}.attributeType"), &["B", "N", "S"]),
        }
        out.push((
            name.unwrap_or_default().to_string(),
            scalar.unwrap_or_default().to_string(),
        ));
    }
    Ok(Some(out))
}

/// Decodes a ProvisionedThroughput member (both units required, each >= 1).
pub(crate) fn throughput_shape(
    v: &mut Violations,
    req: &Request,
    member: &str,
    path: &str,
) -> Result<Option<ProvisionedThroughput>, ApiError> {
    let Some(pt) = nested(req, member)? else {
        return Ok(None);
    };
    let read = pt.i64("ReadCapacityUnits")?;
    let write = pt.i64("WriteCapacityUnits")?;
    for (value, field) in [(read, "readCapacityUnits"), (write, "writeCapacityUnits")] {
        match value {
            None => v.push_null(&format!("{path}.{field}")),
            Some(n) if n < 1 => v.push(
                &quoted(&n.to_string()),
                &format!("{path}.{field}"),
                "Member must have value greater than or equal to 1",
            ),
            Some(_) => {}
        }
    }
    Ok(Some(ProvisionedThroughput {
        read_capacity_units: read.unwrap_or(0),
        write_capacity_units: write.unwrap_or(0),
    }))
}

/// A StreamSpecification as the request gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StreamRequest {
    pub enabled: bool,
    pub view_type: Option<String>,
}

/// Decodes a StreamSpecification member.
pub(crate) fn stream_shape(
    v: &mut Violations,
    req: &Request,
) -> Result<Option<StreamRequest>, ApiError> {
    let Some(spec) = nested(req, "StreamSpecification")? else {
        return Ok(None);
    };
    let enabled = spec.bool("StreamEnabled")?;
    let view_type = spec.str("StreamViewType")?;
    if enabled.is_none() {
        v.push_null("streamSpecification.streamEnabled");
    }
    check_enum(
        v,
        view_type,
        "streamSpecification.streamViewType",
        &STREAM_VIEW_TYPES,
    );
    Ok(Some(StreamRequest {
        enabled: enabled.unwrap_or(false),
        view_type: view_type.map(str::to_string),
    }))
}

/// A secondary index projection as the request gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProjectionRequest {
    pub projection_type: Option<String>,
    pub non_key_attributes: Option<Vec<String>>,
}

fn projection_shape(
    v: &mut Violations,
    index: &Request,
    path: &str,
) -> Result<ProjectionRequest, ApiError> {
    let Some(p) = nested(index, "Projection")? else {
        v.push_null(&format!("{path}.projection"));
        return Ok(ProjectionRequest::default());
    };
    let projection_type = p.str("ProjectionType")?;
    check_enum(
        v,
        projection_type,
        &format!("{path}.projection.projectionType"),
        &["ALL", "KEYS_ONLY", "INCLUDE"],
    );
    let non_key = match p.array("NonKeyAttributes")? {
        None => None,
        Some(list) => {
            let names = strings(list)?;
            let at = format!("{path}.projection.nonKeyAttributes");
            if names.is_empty() {
                v.push(
                    "'[]'",
                    &at,
                    "Member must have length greater than or equal to 1",
                );
            }
            if names.len() > MAX_NON_KEY_ATTRIBUTES {
                v.push(
                    &format!("'[{}]'", names.join(", ")),
                    &at,
                    &format!(
                        "Member must have length less than or equal to {MAX_NON_KEY_ATTRIBUTES}"
                    ),
                );
            }
            for (i, name) in names.iter().enumerate() {
                check_length(v, name, &format!("{at}.{}.member", i + 1), 1, 255);
            }
            Some(names)
        }
    };
    Ok(ProjectionRequest {
        projection_type: projection_type.map(str::to_string),
        non_key_attributes: non_key,
    })
}

/// A secondary index as the request gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IndexRequest {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: ProjectionRequest,
    pub throughput: Option<ProvisionedThroughput>,
}

/// Decodes one index structure (of CreateTable or of a GSI Create action)
/// whose members are reported under `path`.
pub(crate) fn index_shape(
    v: &mut Violations,
    index: &Request,
    path: &str,
    global: bool,
) -> Result<IndexRequest, ApiError> {
    let name = index.str("IndexName")?;
    check_name(v, name, &format!("{path}.indexName"), 3, 255);
    let key_schema = key_schema_shape(v, index, "KeySchema", &format!("{path}.keySchema"))?;
    let projection = projection_shape(v, index, path)?;
    let throughput = if global {
        throughput_shape(
            v,
            index,
            "ProvisionedThroughput",
            &format!("{path}.provisionedThroughput"),
        )?
    } else {
        None
    };
    Ok(IndexRequest {
        name: name.unwrap_or_default().to_string(),
        key_schema,
        projection,
        throughput,
    })
}

fn indexes_shape(
    v: &mut Violations,
    req: &Request,
    member: &str,
    path: &str,
    global: bool,
) -> Result<Option<Vec<IndexRequest>>, ApiError> {
    let Some(list) = req.array(member)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, index) in structures(list)?.iter().enumerate() {
        out.push(index_shape(
            v,
            index,
            &format!("{path}.{}.member", i + 1),
            global,
        )?);
    }
    Ok(Some(out))
}

/// Decodes a list of tags, recording length violations under `path`.
pub(crate) fn tags_shape(
    v: &mut Violations,
    list: &[Value],
    path: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, tag) in structures(list)?.iter().enumerate() {
        let at = format!("{path}.{}.member", i + 1);
        let key = tag.str("Key")?;
        let value = tag.str("Value")?;
        match key {
            None => v.push_null(&format!("{at}.key")),
            Some(k) => check_length(v, k, &format!("{at}.key"), 1, 128),
        }
        match value {
            None => v.push_null(&format!("{at}.value")),
            Some(val) => check_length(v, val, &format!("{at}.value"), 0, 256),
        }
        out.push((
            key.unwrap_or_default().to_string(),
            value.unwrap_or_default().to_string(),
        ));
    }
    Ok(out)
}

fn tag_text_is_valid(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphabetic()
            || c.is_numeric()
            || c.is_whitespace()
            || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
    })
}

/// Checks tag keys and values against DynamoDB's tag rules (characters,
/// reserved prefix, duplicates).
pub(crate) fn check_tags(tags: &[(String, String)]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    for (key, value) in tags {
        if !tag_text_is_valid(key) {
            return Err(ApiError::validation(format!(
                "The Tag Key provided is invalid, Key: {key}"
            )));
        }
        if key.starts_with("aws:") {
            return Err(ApiError::validation(format!(
                "Tag Key cannot be prefixed with aws:, Key: {key}"
            )));
        }
        if !tag_text_is_valid(value) {
            return Err(ApiError::validation(format!(
                "The Tag Value provided is invalid, Value: {value}"
            )));
        }
        if !seen.insert(key.as_str()) {
            return Err(ApiError::validation(format!(
                "Duplicate Tag Keys provided as input: Duplicate Tag Key found {key}"
            )));
        }
    }
    Ok(())
}

/// The error for more than [`MAX_TAGS`] tags on a resource.
pub(crate) fn too_many_tags() -> ApiError {
    ApiError::validation("Number of Tags exceed the current limit for the provided ResourceArn")
}

/// A CreateTable request that passed the shape stage.
#[derive(Clone, Debug, Default)]
pub(crate) struct CreateTableRequest {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<KeyElement>,
    pub local_indexes: Option<Vec<IndexRequest>>,
    pub global_indexes: Option<Vec<IndexRequest>>,
    pub billing_mode: Option<String>,
    pub throughput: Option<ProvisionedThroughput>,
    pub stream: Option<StreamRequest>,
    pub tags: Option<Vec<(String, String)>>,
    pub table_class: Option<String>,
    pub deletion_protection: bool,
}

/// Decodes a CreateTable request and runs the shape stage of validation.
pub(crate) fn parse_create_table(req: &Request) -> Result<CreateTableRequest, ApiError> {
    let Some(name) = req.str("TableName")? else {
        return Err(ApiError::validation(
            "The parameter 'TableName' is required but was not present in the request",
        ));
    };
    let mut v = Violations::new();
    let attributes = attribute_definitions_shape(&mut v, req, true)?.unwrap_or_default();
    check_name(&mut v, Some(name), "tableName", 3, 255);
    let key_schema = key_schema_shape(&mut v, req, "KeySchema", "keySchema")?;
    let local_indexes = indexes_shape(
        &mut v,
        req,
        "LocalSecondaryIndexes",
        "localSecondaryIndexes",
        false,
    )?;
    let global_indexes = indexes_shape(
        &mut v,
        req,
        "GlobalSecondaryIndexes",
        "globalSecondaryIndexes",
        true,
    )?;
    let billing_mode = req.str("BillingMode")?;
    check_enum(
        &mut v,
        billing_mode,
        "billingMode",
        &["PROVISIONED", "PAY_PER_REQUEST"],
    );
    let throughput = throughput_shape(
        &mut v,
        req,
        "ProvisionedThroughput",
        "provisionedThroughput",
    )?;
    let stream = stream_shape(&mut v, req)?;
    let tags = match req.array("Tags")? {
        None => None,
        Some(list) => Some(tags_shape(&mut v, list, "tags")?),
    };
    let table_class = req.str("TableClass")?.map(str::to_string);
    let deletion_protection = req.bool("DeletionProtectionEnabled")?.unwrap_or(false);
    v.into_result()?;
    Ok(CreateTableRequest {
        name: name.to_string(),
        attributes,
        key_schema,
        local_indexes,
        global_indexes,
        billing_mode: billing_mode.map(str::to_string),
        throughput,
        stream,
        tags,
        table_class,
        deletion_protection,
    })
}

fn names(keys: &[KeyElement]) -> String {
    keys.iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn attribute_names(attributes: &[(String, String)]) -> String {
    attributes
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the element order and definitions of one key schema (table or
/// index).
fn check_key_elements(
    keys: &[KeyElement],
    attributes: &[(String, String)],
) -> Result<(), ApiError> {
    let defined = |name: &str| attributes.iter().any(|(a, _)| a == name);
    if keys.iter().any(|k| !defined(&k.name)) {
        return Err(invalid(format!(
            "Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            names(keys),
            attribute_names(attributes)
        )));
    }
    same_name_and_order(keys)
}

fn same_name_and_order(keys: &[KeyElement]) -> Result<(), ApiError> {
    if let [first, second] = keys {
        if first.name == second.name {
            return Err(ApiError::validation(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name",
            ));
        }
    }
    if keys.first().is_some_and(|k| k.key_type != "HASH") {
        return Err(ApiError::validation(
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
        ));
    }
    if keys.get(1).is_some_and(|k| k.key_type != "RANGE") {
        return Err(ApiError::validation(
            "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type",
        ));
    }
    Ok(())
}

/// Checks the table's own key schema against the attribute definitions.
fn check_table_key(keys: &[KeyElement], attributes: &[(String, String)]) -> Result<(), ApiError> {
    let defined = |name: &str| attributes.iter().any(|(a, _)| a == name);
    if keys.len() == 2 {
        let same_single = keys[0].name == keys[1].name && attributes.len() == 1;
        if keys.iter().any(|k| !defined(&k.name)) || same_single {
            return Err(ApiError::validation(
                "Invalid KeySchema: Some index key attribute have no definition",
            ));
        }
    } else if keys.iter().any(|k| !defined(&k.name)) {
        return Err(invalid(format!(
            "Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            names(keys),
            attribute_names(attributes)
        )));
    }
    same_name_and_order(keys)
}

/// Validates a projection and converts it to the model's form.
pub(crate) fn check_projection(p: &ProjectionRequest) -> Result<Projection, ApiError> {
    let Some(kind) = p.projection_type.as_deref() else {
        return Err(invalid("Unknown ProjectionType: null"));
    };
    match (kind, &p.non_key_attributes) {
        ("INCLUDE", None) => Err(invalid(
            "ProjectionType is INCLUDE, but NonKeyAttributes is not specified",
        )),
        ("INCLUDE", Some(attrs)) => {
            let mut seen = HashSet::new();
            if let Some(dup) = attrs.iter().find(|a| !seen.insert(a.as_str())) {
                return Err(invalid(format!(
                    "Duplicate element in NonKeyAttributes: {dup}"
                )));
            }
            let mut sorted = attrs.clone();
            sorted.sort();
            Ok(Projection::Include(sorted))
        }
        (other, Some(_)) => Err(invalid(format!(
            "ProjectionType is {other}, but NonKeyAttributes is specified"
        ))),
        ("KEYS_ONLY", None) => Ok(Projection::KeysOnly),
        _ => Ok(Projection::All),
    }
}

fn key_schema_of(
    keys: &[KeyElement],
    attributes: &[(String, String)],
) -> Result<KeySchema, ApiError> {
    let attribute = |k: &KeyElement| -> Result<KeyAttribute, ApiError> {
        let scalar = attributes
            .iter()
            .find(|(n, _)| *n == k.name)
            .and_then(|(_, t)| ScalarType::parse(t))
            .ok_or_else(|| {
                ApiError::validation(
                    "Invalid KeySchema: Some index key attribute have no definition",
                )
            })?;
        Ok(KeyAttribute {
            name: k.name.clone(),
            scalar_type: scalar,
        })
    };
    let hash = keys
        .first()
        .ok_or_else(|| ApiError::validation("No Hash Key specified in schema"))?;
    Ok(KeySchema {
        hash: attribute(hash)?,
        range: keys.get(1).map(attribute).transpose()?,
    })
}

/// Checks a global secondary index's throughput against the table's billing
/// mode.
pub(crate) fn check_index_throughput(
    index: &IndexRequest,
    billing: BillingMode,
) -> Result<(), ApiError> {
    match (billing, index.throughput) {
        (BillingMode::Provisioned, None) => Err(invalid(format!(
            "ProvisionedThroughput is not specified for index: {}",
            index.name
        ))),
        (BillingMode::PayPerRequest, Some(_)) => Err(invalid(format!(
            "ProvisionedThroughput should not be specified for index: {} when BillingMode is PAY_PER_REQUEST",
            index.name
        ))),
        _ => Ok(()),
    }
}

/// Validates one global secondary index definition against the attribute
/// definitions and converts it.
pub(crate) fn check_global_index(
    index: &IndexRequest,
    attributes: &[(String, String)],
    billing: BillingMode,
) -> Result<IndexDefinition, ApiError> {
    check_key_elements(&index.key_schema, attributes)?;
    let projection = check_projection(&index.projection)?;
    check_index_throughput(index, billing)?;
    Ok(IndexDefinition {
        name: index.name.clone(),
        key_schema: key_schema_of(&index.key_schema, attributes)?,
        projection,
        throughput: match billing {
            BillingMode::Provisioned => index.throughput,
            BillingMode::PayPerRequest => None,
        },
    })
}

/// Returns the partition count of a new table (DESIGN.md §3): one per 3000
/// RCU or 1000 WCU, at least one; on-demand tables start with one.
pub(crate) fn initial_partitions(throughput: Option<ProvisionedThroughput>) -> u32 {
    let Some(t) = throughput else {
        return 1;
    };
    let by_read = (t.read_capacity_units.max(0) as u64).div_ceil(3000);
    let by_write = (t.write_capacity_units.max(0) as u64).div_ceil(1000);
    u32::try_from(by_read.max(by_write).max(1)).unwrap_or(u32::MAX)
}

/// Runs the semantic stage of CreateTable validation and builds the table's
/// definition. `now_ms` is the creation time.
pub(crate) fn build_definition(
    req: &CreateTableRequest,
    table_id: String,
    now_ms: u64,
) -> Result<TableDefinition, ApiError> {
    let billing = match req.billing_mode.as_deref() {
        Some("PAY_PER_REQUEST") => BillingMode::PayPerRequest,
        _ => BillingMode::Provisioned,
    };
    match (billing, req.throughput) {
        (BillingMode::PayPerRequest, Some(_)) => {
            return Err(invalid(
                "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
            ))
        }
        (BillingMode::Provisioned, None) => {
            return Err(invalid(
                "ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
            ))
        }
        _ => {}
    }
    let attributes = &req.attributes;
    let mut seen = HashSet::new();
    if let Some((dup, _)) = attributes.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(ApiError::validation(format!(
            "Attribute Name is duplicated: {dup}"
        )));
    }
    check_table_key(&req.key_schema, attributes)?;
    if req.local_indexes.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid("List of LocalSecondaryIndexes is empty"));
    }
    if req.global_indexes.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid("List of GlobalSecondaryIndexes is empty"));
    }
    let locals = req.local_indexes.as_deref().unwrap_or_default();
    let globals = req.global_indexes.as_deref().unwrap_or_default();
    if locals.is_empty() && globals.is_empty() {
        if req.key_schema.len() != attributes.len() {
            return Err(invalid(
                "Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
            ));
        }
    } else {
        let mut used: Vec<&str> = Vec::new();
        let all_keys = req
            .key_schema
            .iter()
            .chain(locals.iter().flat_map(|i| i.key_schema.iter()))
            .chain(globals.iter().flat_map(|i| i.key_schema.iter()));
        for key in all_keys {
            if !used.contains(&key.name.as_str()) {
                used.push(&key.name);
            }
        }
        if attributes.iter().any(|(n, _)| !used.contains(&n.as_str())) {
            return Err(invalid(format!(
                "Some AttributeDefinitions are not used. AttributeDefinitions: [{}], keys used: [{}]",
                attribute_names(attributes),
                used.join(", ")
            )));
        }
    }

    let key_schema = key_schema_of(&req.key_schema, attributes)?;
    let mut index_names: HashSet<&str> = HashSet::new();
    let mut local_indexes = Vec::with_capacity(locals.len());
    if !locals.is_empty() && key_schema.range.is_none() {
        return Err(invalid(
            "Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex",
        ));
    }
    for index in locals {
        check_key_elements(&index.key_schema, attributes)?;
        if index.key_schema.len() != 2 {
            return Err(invalid(format!(
                "Index KeySchema does not have a range key for index: {}",
                index.name
            )));
        }
        let index_hash = index
            .key_schema
            .first()
            .map(|k| k.name.as_str())
            .unwrap_or_default();
        if index_hash != key_schema.hash.name {
            return Err(invalid(format!(
                "Index KeySchema does not have the same leading hash key as table KeySchema for index: {}. index hash key: {index_hash}, table hash key: {}",
                index.name, key_schema.hash.name
            )));
        }
        let projection = check_projection(&index.projection)?;
        if !index_names.insert(&index.name) {
            return Err(invalid(format!("Duplicate index name: {}", index.name)));
        }
        local_indexes.push(IndexDefinition {
            name: index.name.clone(),
            key_schema: key_schema_of(&index.key_schema, attributes)?,
            projection,
            throughput: None,
        });
    }
    if local_indexes.len() > MAX_LOCAL_INDEXES {
        return Err(invalid(format!(
            "Number of LocalSecondaryIndexes exceeds per-table limit of {MAX_LOCAL_INDEXES}"
        )));
    }
    let mut global_indexes = Vec::with_capacity(globals.len());
    for index in globals {
        let def = check_global_index(index, attributes, billing)?;
        if !index_names.insert(&index.name) {
            return Err(invalid(format!("Duplicate index name: {}", index.name)));
        }
        global_indexes.push(def);
    }
    if global_indexes.len() > MAX_GLOBAL_INDEXES {
        return Err(invalid(format!(
            "GlobalSecondaryIndex count exceeds the per-table limit of {MAX_GLOBAL_INDEXES}"
        )));
    }

    let stream = match &req.stream {
        Some(StreamRequest {
            enabled: true,
            view_type: None,
        }) => {
            return Err(invalid(
                "Table is being created with a stream enabled, UpdateViewType is required",
            ))
        }
        Some(StreamRequest {
            enabled: false,
            view_type: Some(_),
        }) => return Err(invalid(
            "Table is being created with a stream disabled, UpdateViewType should not be specified",
        )),
        Some(s) if s.enabled => Some(StreamSpecification {
            enabled: true,
            view_type: s.view_type.clone(),
        }),
        _ => None,
    };
    if let Some(class) = &req.table_class {
        if !TABLE_CLASSES.contains(&class.as_str()) {
            return Err(invalid_table_class());
        }
    }
    let tags = req.tags.clone().unwrap_or_default();
    check_tags(&tags)?;
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }

    let mut attribute_definitions: Vec<AttributeDefinition> = attributes
        .iter()
        .filter_map(|(name, t)| {
            ScalarType::parse(t).map(|scalar_type| AttributeDefinition {
                name: name.clone(),
                scalar_type,
            })
        })
        .collect();
    attribute_definitions.sort_by(|a, b| a.name.cmp(&b.name));
    let throughput = match billing {
        BillingMode::Provisioned => req.throughput,
        BillingMode::PayPerRequest => None,
    };
    Ok(TableDefinition {
        revision: 0,
        name: req.name.clone(),
        table_id,
        key_schema,
        attribute_definitions,
        billing_mode: billing,
        throughput,
        created_at_ms: now_ms,
        pay_per_request_since_ms: (billing == BillingMode::PayPerRequest).then_some(now_ms),
        stream_label: stream.as_ref().map(|_| iso_timestamp(now_ms)),
        stream,
        ttl: None,
        tags,
        table_class: req.table_class.clone(),
        deletion_protection: req.deletion_protection,
        local_indexes,
        global_indexes,
        partitions: initial_partitions(throughput),
        on_demand: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Request {
        match body {
            Value::Object(m) => Request::from_object(m),
            _ => Request::default(),
        }
    }

    fn create(body: Value) -> Result<TableDefinition, ApiError> {
        let parsed = parse_create_table(&request(body))?;
        build_definition(&parsed, "id".into(), 1_000)
    }

    fn message(body: Value) -> String {
        match create(body) {
            Ok(def) => panic!("expected an error, got {def:?}"),
            Err(e) => {
                assert_eq!(e.kind, crate::error::ErrorKind::Validation, "{}", e.message);
                e.message
            }
        }
    }

    fn hash_table() -> Value {
        json!({
            "TableName": "orders",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        })
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        if let Value::Object(m) = &mut base {
            if value.is_null() {
                m.remove(key);
            } else {
                m.insert(key.into(), value);
            }
        }
        base
    }

    #[test]
    fn builds_a_provisioned_hash_table() {
        let def = create(hash_table()).unwrap();
        assert_eq!(def.name, "orders");
        assert_eq!(def.key_schema.hash.name, "pk");
        assert!(def.key_schema.range.is_none());
        assert_eq!(def.billing_mode, BillingMode::Provisioned);
        assert_eq!(def.throughput.unwrap().read_capacity_units, 5);
        assert_eq!(def.partitions, 1);
        assert_eq!(def.created_at_ms, 1_000);
        assert!(def.stream.is_none() && def.stream_label.is_none());
        assert!(!def.deletion_protection);
    }

    #[test]
    fn partition_count_follows_throughput() {
        let pt = |r, w| {
            Some(ProvisionedThroughput {
                read_capacity_units: r,
                write_capacity_units: w,
            })
        };
        assert_eq!(initial_partitions(None), 1);
        assert_eq!(initial_partitions(pt(1, 1)), 1);
        assert_eq!(initial_partitions(pt(3000, 1000)), 1);
        assert_eq!(initial_partitions(pt(3001, 1)), 2);
        assert_eq!(initial_partitions(pt(1, 2500)), 3);
        assert_eq!(initial_partitions(pt(40000, 40000)), 40);
    }

    #[test]
    fn missing_table_name_is_reported_as_required() {
        assert_eq!(
            message(with(hash_table(), "TableName", Value::Null)),
            "The parameter 'TableName' is required but was not present in the request"
        );
    }

    #[test]
    fn shape_violations_are_reported_together() {
        assert_eq!(
            message(with(hash_table(), "TableName", json!("ab"))),
            "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3"
        );
        let body = with(
            with(
                hash_table(),
                "KeySchema",
                json!([{"AttributeName": "pk", "KeyType": "INVALID"}]),
            ),
            "BillingMode",
            json!("INVALID_MODE"),
        );
        let m = message(body);
        assert!(m.starts_with("2 validation errors detected: "), "{m}");
        assert!(m.contains("Value 'INVALID' at 'keySchema.1.member.keyType' failed to satisfy constraint: Member must satisfy enum value set: [HASH, RANGE]"), "{m}");
        assert!(m.contains("Value 'INVALID_MODE' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"), "{m}");
        assert_eq!(
            message(with(hash_table(), "AttributeDefinitions", json!([{"AttributeName": "pk", "AttributeType": "INVALID"}]))),
            "1 validation error detected: Value 'INVALID' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
        );
        let m = message(json!({"TableName": "", "KeySchema": [], "AttributeDefinitions": []}));
        assert!(m.contains("'tableName'"), "{m}");
        assert_eq!(
            message(with(hash_table(), "ProvisionedThroughput", json!({"ReadCapacityUnits": 0, "WriteCapacityUnits": 5}))),
            "1 validation error detected: Value '0' at 'provisionedThroughput.readCapacityUnits' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
    }

    #[test]
    fn too_many_key_elements_render_the_list() {
        let body = with(
            with(
                hash_table(),
                "AttributeDefinitions",
                json!([
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "extra", "AttributeType": "S"}
                ]),
            ),
            "KeySchema",
            json!([
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
                {"AttributeName": "extra", "KeyType": "RANGE"}
            ]),
        );
        assert_eq!(
            message(body),
            "1 validation error detected: Value '[KeySchemaElement(attributeName=pk, keyType=HASH), KeySchemaElement(attributeName=sk, keyType=RANGE), KeySchemaElement(attributeName=extra, keyType=RANGE)]' at 'keySchema' failed to satisfy constraint: Member must have length less than or equal to 2"
        );
    }

    #[test]
    fn billing_mode_and_throughput_must_agree() {
        assert_eq!(
            message(with(hash_table(), "ProvisionedThroughput", Value::Null)),
            "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED"
        );
        assert_eq!(
            message(with(hash_table(), "BillingMode", json!("PAY_PER_REQUEST"))),
            "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
        );
        let on_demand = with(
            with(hash_table(), "ProvisionedThroughput", Value::Null),
            "BillingMode",
            json!("PAY_PER_REQUEST"),
        );
        let def = create(on_demand).unwrap();
        assert_eq!(def.billing_mode, BillingMode::PayPerRequest);
        assert!(def.throughput.is_none());
        assert_eq!(def.pay_per_request_since_ms, Some(1_000));
    }

    #[test]
    fn key_schema_rules_in_dynamodb_order() {
        let dup = with(
            hash_table(),
            "KeySchema",
            json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}]),
        );
        assert_eq!(
            message(dup),
            "Invalid KeySchema: Some index key attribute have no definition"
        );
        let undefined = with(
            hash_table(),
            "KeySchema",
            json!([{"AttributeName": "id", "KeyType": "HASH"}]),
        );
        assert_eq!(
            message(undefined),
            "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [id], AttributeDefinitions: [pk]"
        );
        let two_defs = json!([
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"}
        ]);
        let range_first = with(
            with(hash_table(), "AttributeDefinitions", two_defs.clone()),
            "KeySchema",
            json!([{"AttributeName": "sk", "KeyType": "RANGE"}, {"AttributeName": "pk", "KeyType": "HASH"}]),
        );
        assert_eq!(
            message(range_first),
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"
        );
        let two_hash = with(
            with(hash_table(), "AttributeDefinitions", two_defs),
            "KeySchema",
            json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "HASH"}]),
        );
        assert_eq!(
            message(two_hash),
            "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type"
        );
        let unused = with(
            hash_table(),
            "AttributeDefinitions",
            json!([{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "extra", "AttributeType": "N"}]),
        );
        assert_eq!(
            message(unused),
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions"
        );
        let duplicated = with(
            hash_table(),
            "AttributeDefinitions",
            json!([{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "pk", "AttributeType": "N"}]),
        );
        assert_eq!(message(duplicated), "Attribute Name is duplicated: pk");
    }

    fn composite_with_indexes(lsis: Value, gsis: Value, extra_attrs: &[(&str, &str)]) -> Value {
        let mut attrs = vec![
            json!({"AttributeName": "pk", "AttributeType": "S"}),
            json!({"AttributeName": "sk", "AttributeType": "S"}),
        ];
        for (n, t) in extra_attrs {
            attrs.push(json!({"AttributeName": n, "AttributeType": t}));
        }
        let mut body = json!({
            "TableName": "orders",
            "AttributeDefinitions": attrs,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "BillingMode": "PAY_PER_REQUEST",
        });
        if !lsis.is_null() {
            body = with(body, "LocalSecondaryIndexes", lsis);
        }
        if !gsis.is_null() {
            body = with(body, "GlobalSecondaryIndexes", gsis);
        }
        body
    }

    #[test]
    fn secondary_indexes_are_validated_and_recorded() {
        let body = composite_with_indexes(
            json!([{"IndexName": "lsi1", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "l", "KeyType": "RANGE"}], "Projection": {"ProjectionType": "ALL"}}]),
            json!([{"IndexName": "gsi1", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["z", "a"]}}]),
            &[("l", "N"), ("g", "S")],
        );
        let def = create(body).unwrap();
        assert_eq!(def.local_indexes.len(), 1);
        assert_eq!(
            def.local_indexes[0]
                .key_schema
                .range
                .as_ref()
                .unwrap()
                .scalar_type,
            ScalarType::N
        );
        assert_eq!(
            def.global_indexes[0].projection,
            Projection::Include(vec!["a".into(), "z".into()])
        );
        assert_eq!(def.global_indexes[0].throughput, None);
        let names: Vec<_> = def
            .attribute_definitions
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["g", "l", "pk", "sk"]);
    }

    #[test]
    fn secondary_index_errors() {
        let lsi_on_hash_table = json!({
            "TableName": "orders",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "lsiSk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "LocalSecondaryIndexes": [{"IndexName": "lsi1", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "lsiSk", "KeyType": "RANGE"}], "Projection": {"ProjectionType": "ALL"}}],
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        });
        assert_eq!(
            message(lsi_on_hash_table),
            "One or more parameter values were invalid: Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex"
        );
        let gsi = |name: &str, key: &str| json!({"IndexName": name, "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}});
        assert_eq!(
            message(composite_with_indexes(
                Value::Null,
                json!([gsi("sameIndex", "a"), gsi("sameIndex", "b")]),
                &[("a", "S"), ("b", "S")]
            )),
            "One or more parameter values were invalid: Duplicate index name: sameIndex"
        );
        assert_eq!(
            message(composite_with_indexes(Value::Null, json!([gsi("gx1", "a")]), &[("a", "S"), ("b", "S")])),
            "One or more parameter values were invalid: Some AttributeDefinitions are not used. AttributeDefinitions: [pk, sk, a, b], keys used: [pk, sk, a]"
        );
        assert_eq!(
            message(composite_with_indexes(Value::Null, json!([]), &[])),
            "One or more parameter values were invalid: List of GlobalSecondaryIndexes is empty"
        );
        let wrong_hash = json!([{"IndexName": "lsi1", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}, {"AttributeName": "b", "KeyType": "RANGE"}], "Projection": {"ProjectionType": "ALL"}}]);
        assert_eq!(
            message(composite_with_indexes(wrong_hash, Value::Null, &[("a", "S"), ("b", "S")])),
            "One or more parameter values were invalid: Index KeySchema does not have the same leading hash key as table KeySchema for index: lsi1. index hash key: a, table hash key: pk"
        );
        let no_range = json!([{"IndexName": "lsi1", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}]);
        assert_eq!(
            message(composite_with_indexes(no_range, Value::Null, &[])),
            "One or more parameter values were invalid: Index KeySchema does not have a range key for index: lsi1"
        );
        let include_without = json!([{"IndexName": "gx1", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}], "Projection": {"ProjectionType": "INCLUDE"}}]);
        assert_eq!(
            message(composite_with_indexes(Value::Null, include_without, &[("a", "S")])),
            "One or more parameter values were invalid: ProjectionType is INCLUDE, but NonKeyAttributes is not specified"
        );
        let all_with = json!([{"IndexName": "gx1", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL", "NonKeyAttributes": ["x"]}}]);
        assert_eq!(
            message(composite_with_indexes(Value::Null, all_with, &[("a", "S")])),
            "One or more parameter values were invalid: ProjectionType is ALL, but NonKeyAttributes is specified"
        );
        let with_throughput = json!([{"IndexName": "gx1", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}, "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}]);
        assert_eq!(
            message(composite_with_indexes(Value::Null, with_throughput, &[("a", "S")])),
            "One or more parameter values were invalid: ProvisionedThroughput should not be specified for index: gx1 when BillingMode is PAY_PER_REQUEST"
        );
        let no_projection =
            json!([{"IndexName": "gx1", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}]}]);
        assert_eq!(
            message(composite_with_indexes(Value::Null, no_projection, &[("a", "S")])),
            "1 validation error detected: Value null at 'globalSecondaryIndexes.1.member.projection' failed to satisfy constraint: Member must not be null"
        );
        let many: Vec<Value> = (0..21).map(|i| gsi(&format!("gsi{i}"), "a")).collect();
        assert_eq!(
            message(composite_with_indexes(Value::Null, Value::Array(many), &[("a", "S")])),
            "One or more parameter values were invalid: GlobalSecondaryIndex count exceeds the per-table limit of 20"
        );
    }

    #[test]
    fn streams_tags_and_table_class() {
        let def = create(with(
            hash_table(),
            "StreamSpecification",
            json!({"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"}),
        ))
        .unwrap();
        assert_eq!(
            def.stream.as_ref().unwrap().view_type.as_deref(),
            Some("NEW_IMAGE")
        );
        assert_eq!(def.stream_label.as_deref(), Some("1970-01-01T00:00:01.000"));
        assert_eq!(
            message(with(hash_table(), "StreamSpecification", json!({"StreamEnabled": true}))),
            "One or more parameter values were invalid: Table is being created with a stream enabled, UpdateViewType is required"
        );
        assert_eq!(
            message(with(hash_table(), "StreamSpecification", json!({"StreamEnabled": true, "StreamViewType": "ALL"}))),
            "1 validation error detected: Value 'ALL' at 'streamSpecification.streamViewType' failed to satisfy constraint: Member must satisfy enum value set: [NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY]"
        );
        let def = create(with(
            hash_table(),
            "StreamSpecification",
            json!({"StreamEnabled": false}),
        ))
        .unwrap();
        assert!(def.stream.is_none());
        assert_eq!(
            message(with(hash_table(), "TableClass", json!("COLD"))),
            "Invalid table-class parameter provided. Please try again with a valid table-class value: [STANDARD, STANDARD_INFREQUENT_ACCESS]."
        );
        let def = create(with(
            hash_table(),
            "Tags",
            json!([{"Key": "env", "Value": "prod"}]),
        ))
        .unwrap();
        assert_eq!(def.tags, vec![("env".to_string(), "prod".to_string())]);
        assert_eq!(
            message(with(
                hash_table(),
                "Tags",
                json!([{"Key": "aws:x", "Value": "1"}])
            )),
            "Tag Key cannot be prefixed with aws:, Key: aws:x"
        );
        assert_eq!(
            message(with(hash_table(), "Tags", json!([{"Key": "", "Value": "1"}]))),
            "1 validation error detected: Value '' at 'tags.1.member.key' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
        let many: Vec<Value> = (0..51)
            .map(|i| json!({"Key": format!("k{i}"), "Value": "v"}))
            .collect();
        assert_eq!(
            message(with(hash_table(), "Tags", Value::Array(many))),
            "Number of Tags exceed the current limit for the provided ResourceArn"
        );
        let def = create(with(hash_table(), "DeletionProtectionEnabled", json!(true))).unwrap();
        assert!(def.deletion_protection);
    }

    #[test]
    fn wrong_json_types_are_serialization_errors() {
        let err = create(with(hash_table(), "KeySchema", json!("pk"))).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Serialization);
        let err = create(with(hash_table(), "TableName", json!(5))).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Serialization);
    }
}
