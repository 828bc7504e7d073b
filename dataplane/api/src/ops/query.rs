//! Query and Scan: key conditions, filters, projections, Select, Limit and
//! the 1 MB page rule (measured before filtering), pagination keys, parallel
//! scan segments, and read capacity.

use partita_expr::{Condition, ExpressionKind, Operand, Path, ProjectionExpression};
use partita_model::value::item_size;
use partita_model::{
    limits, IndexDefinition, Item, KeyAttribute, KeySchema, Projection, TableDefinition,
};
use partita_storage::Visit;
use serde_json::{Map as JsonMap, Value};

use super::common::{
    check_enum, check_not_mixed, check_table_name, consumed_capacity, load_table, path_root,
    put_opt, read_units, CapacityMode, ExprParams, CONDITIONAL_OPERATOR, INVALID,
    RETURN_CONSUMED_CAPACITY, SELECT,
};
use crate::codec;
use crate::error::ApiError;
use crate::request::{quoted, Request, Violations};
use crate::Api;

/// What a Query or Scan returns, before rendering.
struct Page {
    items: Vec<Item>,
    count: usize,
    scanned: usize,
    scanned_bytes: usize,
    last_key: Option<Item>,
}

/// The parts of a Query/Scan request shared by both.
struct ReadRequest<'r> {
    table: &'r str,
    capacity: CapacityMode,
    select: Option<&'r str>,
    limit: Option<usize>,
    consistent: bool,
}

fn check_read_request<'r>(
    api: &Api,
    req: &'r Request,
    violations: &mut Violations,
) -> Result<ReadRequest<'r>, ApiError> {
    let table = check_table_name(api, violations, req)?;
    let select = check_enum(violations, req, "Select", "select", SELECT)?;
    let rcc = check_enum(
        violations,
        req,
        "ReturnConsumedCapacity",
        "returnConsumedCapacity",
        RETURN_CONSUMED_CAPACITY,
    )?;
    check_enum(
        violations,
        req,
        "ConditionalOperator",
        "conditionalOperator",
        CONDITIONAL_OPERATOR,
    )?;
    let limit = req.i64("Limit")?;
    if let Some(l) = limit {
        if l < 1 {
            // Query and Scan word this constraint differently.
            if req.has("KeyConditionExpression") || req.has("KeyConditions") {
                violations.push_without_value(
                    "Limit",
                    "Member must have value greater than or equal to 1",
                );
            } else {
                violations.push(
                    &quoted(&l.to_string()),
                    "limit",
                    "Member must have value greater than or equal to 1",
                );
            }
        }
    }
    if let Some(index) = req.str("IndexName")? {
        crate::request::check_name(violations, Some(index), "indexName", 3, 255);
    }
    Ok(ReadRequest {
        table: table.unwrap_or_default(),
        capacity: CapacityMode::parse(rcc),
        select,
        limit: limit.map(|l| l.max(1) as usize),
        consistent: req.bool("ConsistentRead")?.unwrap_or(false),
    })
}

/// Parses the filter (FilterExpression or the legacy QueryFilter/ScanFilter).
fn filter(
    req: &Request,
    legacy_member: &str,
    attrs: &mut partita_expr::ExpressionAttributes<'_>,
) -> Result<Option<Condition>, ApiError> {
    if let Some(expr) = req.str("FilterExpression")? {
        return Ok(Some(partita_expr::parse_condition(
            ExpressionKind::Filter,
            expr,
            attrs,
        )?));
    }
    if let Some(f) = req.object(legacy_member)? {
        let path = if legacy_member == "QueryFilter" {
            "queryFilter"
        } else {
            "scanFilter"
        };
        return Ok(Some(super::legacy::filter_condition_in(
            path,
            f,
            req.str("ConditionalOperator")?,
        )?));
    }
    Ok(None)
}

/// Applies Select and projection rules, returning the projection to apply.
fn select_projection(
    select: Option<&str>,
    projection: Option<ProjectionExpression>,
    index: Option<&str>,
    uses_attributes_to_get: bool,
) -> Result<Option<ProjectionExpression>, ApiError> {
    match select {
        Some("SPECIFIC_ATTRIBUTES") if projection.is_none() => Err(ApiError::validation(
            "One or more parameter values were invalid: Select type SPECIFIC_ATTRIBUTES requires ProjectionExpression or AttributesToGet",
        )),
        Some(sel @ ("ALL_ATTRIBUTES" | "COUNT" | "ALL_PROJECTED_ATTRIBUTES")) if projection.is_some() => {
            let param = if uses_attributes_to_get { "AttributesToGet" } else { "ProjectionExpression" };
            Err(ApiError::validation(format!(
                "Cannot specify the {param} when choosing to get {sel}"
            )))
        }
        Some("ALL_PROJECTED_ATTRIBUTES") if index.is_none() => Err(ApiError::validation(
            "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES is supported only for index queries",
        )),
        _ => Ok(projection),
    }
}

/// Select=ALL_ATTRIBUTES on a global index needs an index projecting ALL.
fn check_select_on_index(select: Option<&str>, target: &Target<'_>) -> Result<(), ApiError> {
    if let (Some("ALL_ATTRIBUTES"), Some(index), true) = (select, target.index, target.global) {
        if index.projection != Projection::All {
            return Err(ApiError::validation(format!(
                "{INVALID}Select type ALL_ATTRIBUTES is not supported for global secondary index {} because its projection type is not ALL",
                index.name
            )));
        }
    }
    Ok(())
}

/// Returns the sorted root attribute names in `roots` that `target`'s index
/// does not project (none for the table or an index projecting ALL).
fn unprojected<'a>(target: &Target<'_>, roots: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let Some(index) = target.index else {
        return Vec::new();
    };
    let included: &[String] = match &index.projection {
        Projection::All => return Vec::new(),
        Projection::Include(names) => names,
        Projection::KeysOnly => &[],
    };
    let keys = target.page_key_attributes();
    let mut missing: Vec<&str> = roots
        .filter(|root| !keys.iter().any(|k| k.name == *root) && !included.iter().any(|n| n == root))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}

/// A global index cannot fetch from the table, so a projection may name
/// only projected attributes; a Query's filter on any secondary index may
/// name only projected attributes (DynamoDB's rules and wording).
fn check_projected_attributes(
    target: &Target<'_>,
    projection: Option<&ProjectionExpression>,
    query_filter: Option<&Condition>,
) -> Result<(), ApiError> {
    let Some(index) = target.index else {
        return Ok(());
    };
    if let (true, Some(p)) = (target.global, projection) {
        let missing = unprojected(target, p.0.iter().filter_map(path_root));
        if !missing.is_empty() {
            return Err(ApiError::validation(format!(
                "{INVALID}Global secondary index {} does not project [{}]",
                index.name,
                missing.join(", ")
            )));
        }
    }
    if let Some(f) = query_filter {
        let mut roots = Vec::new();
        condition_roots(f, &mut roots);
        let missing = unprojected(target, roots.into_iter());
        if !missing.is_empty() {
            return Err(ApiError::validation(format!(
                "{INVALID}Secondary index {} does not project one or more filter attributes: [{}]",
                index.name,
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// A global index being backfilled cannot be read yet (DynamoDB's rule and
/// wording).
fn check_readable(api: &Api, target: &Target<'_>) -> Result<(), ApiError> {
    let (Some(index), true) = (target.index, target.global) else {
        return Ok(());
    };
    if api
        .store
        .index_state(&target.def.name, &index.name)?
        .backfilling
    {
        return Err(ApiError::validation(format!(
            "Cannot read from backfilling global secondary index: {}",
            index.name
        )));
    }
    Ok(())
}

fn check_consistent_read(rr: &ReadRequest<'_>, target: &Target<'_>) -> Result<(), ApiError> {
    if rr.consistent && target.global {
        return Err(ApiError::validation(
            "Consistent reads are not supported on global secondary indexes",
        ));
    }
    Ok(())
}

/// Returns the root attribute names a condition reads.
fn condition_roots<'c>(cond: &'c Condition, out: &mut Vec<&'c str>) {
    fn operand<'c>(op: &'c Operand, out: &mut Vec<&'c str>) {
        match op {
            Operand::Path(p) | Operand::Size(p) => path(p, out),
            Operand::Value(_) => {}
        }
    }
    fn path<'c>(p: &'c Path, out: &mut Vec<&'c str>) {
        if let Some(root) = path_root(p) {
            out.push(root);
        }
    }
    match cond {
        Condition::Compare(a, _, b) | Condition::BeginsWith(a, b) | Condition::Contains(a, b) => {
            operand(a, out);
            operand(b, out);
        }
        Condition::Between(a, b, c) => {
            operand(a, out);
            operand(b, out);
            operand(c, out);
        }
        Condition::In(a, list) => {
            operand(a, out);
            list.iter().for_each(|o| operand(o, out));
        }
        Condition::And(a, b) | Condition::Or(a, b) => {
            condition_roots(a, out);
            condition_roots(b, out);
        }
        Condition::Not(a) => condition_roots(a, out),
        Condition::AttributeExists(p) | Condition::AttributeNotExists(p) => path(p, out),
        Condition::AttributeType(p, o) => {
            path(p, out);
            operand(o, out);
        }
    }
}

/// The table or secondary index a Query or Scan reads.
struct Target<'d> {
    def: &'d TableDefinition,
    index: Option<&'d IndexDefinition>,
    global: bool,
}

impl<'d> Target<'d> {
    /// Resolves IndexName against the table's indexes.
    fn resolve(def: &'d TableDefinition, index: Option<&str>) -> Result<Target<'d>, ApiError> {
        let Some(name) = index else {
            return Ok(Target {
                def,
                index: None,
                global: false,
            });
        };
        if let Some(i) = def.global_indexes.iter().find(|i| i.name == name) {
            return Ok(Target {
                def,
                index: Some(i),
                global: true,
            });
        }
        if let Some(i) = def.local_indexes.iter().find(|i| i.name == name) {
            return Ok(Target {
                def,
                index: Some(i),
                global: false,
            });
        }
        Err(ApiError::validation(format!(
            "The table does not have the specified index: {name}"
        )))
    }

    /// Returns the key schema the read is keyed by.
    fn key_schema(&self) -> &'d KeySchema {
        match self.index {
            Some(i) => &i.key_schema,
            None => &self.def.key_schema,
        }
    }

    /// Returns the attributes of a pagination key: the table's key
    /// attributes and, for an index, the index's.
    fn page_key_attributes(&self) -> Vec<&'d KeyAttribute> {
        let mut attrs: Vec<&KeyAttribute> = self.def.key_schema.attributes().collect();
        if let Some(i) = self.index {
            for a in i.key_schema.attributes() {
                if !attrs.iter().any(|k| k.name == a.name) {
                    attrs.push(a);
                }
            }
        }
        attrs
    }

    /// Returns the pagination key of an item.
    fn page_key(&self, item: &Item) -> Option<Item> {
        let mut key = Item::new();
        for a in self.page_key_attributes() {
            key.insert(a.name.clone(), item.get(&a.name)?.clone());
        }
        Some(key)
    }

    /// Returns true when every attribute the read may return is in the
    /// index (always true for the table itself).
    fn projects_everything(&self) -> bool {
        self.index
            .map(|i| i.projection == Projection::All)
            .unwrap_or(true)
    }
}

/// Checks an ExclusiveStartKey against the key attributes of the target.
fn start_key(req: &Request, target: &Target<'_>) -> Result<Option<Item>, ApiError> {
    let Some(v) = req.get("ExclusiveStartKey") else {
        return Ok(None);
    };
    let key = codec::item_from_json(v)?;
    let expected = target.page_key_attributes();
    let matches = key.len() == expected.len()
        && expected.iter().all(|a| {
            key.get(&a.name)
                .map(|v| a.scalar_type.matches(v))
                .unwrap_or(false)
        });
    if !matches {
        return Err(ApiError::validation(
            "The provided starting key is invalid: The provided key element does not match the schema",
        ));
    }
    Ok(Some(key))
}

/// For a local index that does not project everything, a read that asks for
/// all attributes (or for attributes outside the projection) fetches the
/// base items, as DynamoDB does.
fn needs_base_fetch(
    target: &Target<'_>,
    select: Option<&str>,
    projection: Option<&ProjectionExpression>,
    filter: Option<&Condition>,
) -> bool {
    if target.index.is_none() || target.global || target.projects_everything() {
        return false;
    }
    if select == Some("ALL_ATTRIBUTES") {
        return true;
    }
    let mut roots: Vec<&str> = Vec::new();
    if let Some(p) = projection {
        roots.extend(p.0.iter().filter_map(path_root));
    }
    if let Some(f) = filter {
        condition_roots(f, &mut roots);
    }
    !unprojected(target, roots.into_iter()).is_empty()
}

/// Visits items, applying Limit, the 1 MB rule, the filter and projection.
fn collect(
    api: &Api,
    target: &Target<'_>,
    rr: &ReadRequest<'_>,
    filter: Option<&Condition>,
    projection: Option<&ProjectionExpression>,
    run: impl FnOnce(&mut dyn FnMut(Item) -> Visit) -> Result<(), ApiError>,
) -> Result<Page, ApiError> {
    let fetch_base = needs_base_fetch(target, rr.select, projection, filter);
    let mut fetch_error = None;
    let mut page = Page {
        items: Vec::new(),
        count: 0,
        scanned: 0,
        scanned_bytes: 0,
        last_key: None,
    };
    let mut eval_error = None;
    let count_only = rr.select == Some("COUNT");
    let all_attributes = rr.select == Some("ALL_ATTRIBUTES");
    let mut visitor = |item: Item| -> Visit {
        page.scanned += 1;
        page.scanned_bytes += item_size(&item);
        let stop = rr.limit.map(|l| page.scanned >= l).unwrap_or(false)
            || page.scanned_bytes >= limits::MAX_PAGE_BYTES;
        if stop {
            page.last_key = target.page_key(&item);
        }
        // The table's item when the read needs more than the index holds.
        let full = if fetch_base {
            let key = target.def.key_schema.extract_key(&item).unwrap_or_default();
            match api.store.get(&target.def.name, &key) {
                Ok(full) => full,
                Err(e) => {
                    fetch_error = Some(e);
                    return Visit::Stop;
                }
            }
        } else {
            None
        };
        let keep = match filter {
            None => true,
            Some(f) => match f.evaluate(Some(full.as_ref().unwrap_or(&item))) {
                Ok(b) => b,
                Err(e) => {
                    eval_error = Some(e);
                    return Visit::Stop;
                }
            },
        };
        if keep {
            page.count += 1;
            if !count_only {
                // Without a projection or Select=ALL_ATTRIBUTES the read
                // returns what the index projects, even when its filter
                // read the table's item.
                page.items.push(match (projection, full) {
                    (Some(p), Some(full)) => p.apply(&full),
                    (Some(p), None) => p.apply(&item),
                    (None, Some(full)) if all_attributes => full,
                    (None, _) => item,
                });
            }
        }
        if stop {
            Visit::Stop
        } else {
            Visit::Continue
        }
    };
    run(&mut visitor)?;
    if let Some(e) = eval_error {
        return Err(e.into());
    }
    if let Some(e) = fetch_error {
        return Err(e.into());
    }
    Ok(page)
}

fn render(table: &str, rr: &ReadRequest<'_>, page: Page) -> Value {
    let mut out = JsonMap::new();
    if rr.select != Some("COUNT") {
        out.insert(
            "Items".to_string(),
            Value::Array(page.items.iter().map(codec::item_to_json).collect()),
        );
    }
    out.insert("Count".to_string(), Value::from(page.count));
    out.insert("ScannedCount".to_string(), Value::from(page.scanned));
    put_opt(
        &mut out,
        "LastEvaluatedKey",
        page.last_key.as_ref().map(codec::item_to_json),
    );
    let units = read_units(page.scanned_bytes, rr.consistent);
    put_opt(
        &mut out,
        "ConsumedCapacity",
        consumed_capacity(table, units, rr.capacity, false),
    );
    Value::Object(out)
}

fn check_filter_keys(
    schema: &KeySchema,
    filter: Option<&Condition>,
    legacy: bool,
) -> Result<(), ApiError> {
    let Some(f) = filter else { return Ok(()) };
    let mut roots = Vec::new();
    condition_roots(f, &mut roots);
    if let Some(key) = roots.into_iter().find(|r| schema.is_key_attribute(r)) {
        let what = if legacy {
            "QueryFilter"
        } else {
            "Filter Expression"
        };
        return Err(ApiError::validation(format!(
            "{what} can only contain non-primary key attributes: Primary key attribute: {key}"
        )));
    }
    Ok(())
}

pub async fn query(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut violations = Violations::new();
    let rr = check_read_request(api, &req, &mut violations)?;
    violations.into_result()?;
    check_not_mixed(
        &req,
        &[
            "AttributesToGet",
            "QueryFilter",
            "ConditionalOperator",
            "KeyConditions",
        ],
        &[
            "ProjectionExpression",
            "FilterExpression",
            "KeyConditionExpression",
        ],
    )?;
    let params = ExprParams::from_request(&req)?;
    params.check_used_with_expressions(
        &req,
        &[
            "ProjectionExpression",
            "FilterExpression",
            "KeyConditionExpression",
        ],
    )?;
    if !req.has("KeyConditionExpression") && !req.has("KeyConditions") {
        return Err(ApiError::validation(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.",
        ));
    }
    let def = load_table(api, rr.table)?;
    let index_name = req.str("IndexName")?;
    let target = Target::resolve(&def, index_name)?;
    check_consistent_read(&rr, &target)?;
    check_readable(api, &target)?;
    let schema = target.key_schema();
    let hash = schema.hash.name.as_str();
    let range = schema.range.as_ref().map(|r| r.name.as_str());
    let mut attrs = params.attributes();
    let key_condition = match req.str("KeyConditionExpression")? {
        Some(expr) => partita_expr::parse_key_condition(expr, &mut attrs, hash, range)?,
        None => match req.object("KeyConditions")? {
            Some(kc) => super::legacy::key_conditions(kc, hash, range)?,
            None => return Err(ApiError::validation("KeyConditions must not be empty")),
        },
    };
    let filter = filter(&req, "QueryFilter", &mut attrs)?;
    let projection = super::common::projection(&req, &mut attrs)?;
    attrs.check_all_used()?;
    let projection = select_projection(
        rr.select,
        projection,
        index_name,
        req.has("AttributesToGet"),
    )?;
    check_select_on_index(rr.select, &target)?;
    check_projected_attributes(&target, projection.as_ref(), filter.as_ref())?;
    check_filter_keys(schema, filter.as_ref(), req.has("QueryFilter"))?;
    check_key_condition_types(schema, &key_condition)?;
    let exclusive_start = start_key(&req, &target)?;
    let forward = req.bool("ScanIndexForward")?.unwrap_or(true);
    let page = collect(
        api,
        &target,
        &rr,
        filter.as_ref(),
        projection.as_ref(),
        |visit| {
            let start = exclusive_start.as_ref();
            let sort = key_condition.sort.as_ref();
            match index_name {
                Some(index) => Ok(api.store.query_index(
                    rr.table,
                    index,
                    &key_condition.hash_value,
                    sort,
                    forward,
                    start,
                    visit,
                )?),
                None => Ok(api.store.query(
                    rr.table,
                    &key_condition.hash_value,
                    sort,
                    forward,
                    start,
                    visit,
                )?),
            }
        },
    )?;
    Ok(render(rr.table, &rr, page))
}

fn check_key_condition_types(
    schema: &KeySchema,
    kc: &partita_expr::KeyCondition,
) -> Result<(), ApiError> {
    use partita_expr::SortKeyCondition as S;
    let mismatch = || {
        ApiError::validation(format!(
            "{INVALID}Condition parameter type does not match schema type"
        ))
    };
    if !schema.hash.scalar_type.matches(&kc.hash_value) {
        return Err(mismatch());
    }
    if let (Some(sort), Some(range)) = (&kc.sort, &schema.range) {
        let values: Vec<&partita_model::AttributeValue> = match sort {
            S::Eq(v) | S::Lt(v) | S::Le(v) | S::Gt(v) | S::Ge(v) | S::BeginsWith(v) => vec![v],
            S::Between(a, b) => vec![a, b],
        };
        if values.iter().any(|v| !range.scalar_type.matches(v)) {
            return Err(mismatch());
        }
        if let S::BeginsWith(partita_model::AttributeValue::N(_)) = sort {
            return Err(ApiError::validation(
                "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
            ));
        }
        if let S::Between(a, b) = sort {
            if compare_scalars(a, b) == Some(std::cmp::Ordering::Greater) {
                return Err(ApiError::validation(
                    "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
                ));
            }
        }
    }
    Ok(())
}

fn compare_scalars(
    a: &partita_model::AttributeValue,
    b: &partita_model::AttributeValue,
) -> Option<std::cmp::Ordering> {
    use partita_model::AttributeValue as V;
    match (a, b) {
        (V::S(x), V::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (V::N(x), V::N(y)) => Some(x.cmp(y)),
        (V::B(x), V::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

pub async fn scan(api: &Api, req: Request) -> Result<Value, ApiError> {
    let mut violations = Violations::new();
    let rr = check_read_request(api, &req, &mut violations)?;
    let segment = req.i64("Segment")?;
    let total = req.i64("TotalSegments")?;
    if let Some(s) = segment {
        if s < 0 {
            violations.push(
                &quoted(&s.to_string()),
                "segment",
                "Member must have value greater than or equal to 0",
            );
        }
        if s > 999_999 {
            violations.push(
                &quoted(&s.to_string()),
                "segment",
                "Member must have value less than or equal to 999999",
            );
        }
    }
    if let Some(t) = total {
        if t < 1 {
            violations.push(
                &quoted(&t.to_string()),
                "totalSegments",
                "Member must have value greater than or equal to 1",
            );
        }
        if t > 1_000_000 {
            violations.push(
                &quoted(&t.to_string()),
                "totalSegments",
                "Member must have value less than or equal to 1000000",
            );
        }
    }
    violations.into_result()?;
    let (segment, total) = match (segment, total) {
        (None, None) => (0u32, 1u32),
        (Some(_), None) => {
            return Err(ApiError::validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::validation(
                "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
            ))
        }
        (Some(s), Some(t)) => {
            if s >= t {
                return Err(ApiError::validation(format!(
                    "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {s} is not less than TotalSegments: {t}"
                )));
            }
            (s as u32, t as u32)
        }
    };
    check_not_mixed(
        &req,
        &["AttributesToGet", "ScanFilter", "ConditionalOperator"],
        &["ProjectionExpression", "FilterExpression"],
    )?;
    let params = ExprParams::from_request(&req)?;
    params.check_used_with_expressions(&req, &["ProjectionExpression", "FilterExpression"])?;
    let mut attrs = params.attributes();
    let filter = filter(&req, "ScanFilter", &mut attrs)?;
    let projection = super::common::projection(&req, &mut attrs)?;
    attrs.check_all_used()?;
    let projection = select_projection(
        rr.select,
        projection,
        req.str("IndexName")?,
        req.has("AttributesToGet"),
    )?;
    let def = load_table(api, rr.table)?;
    let index_name = req.str("IndexName")?;
    let target = Target::resolve(&def, index_name)?;
    check_consistent_read(&rr, &target)?;
    check_readable(api, &target)?;
    check_select_on_index(rr.select, &target)?;
    // A Scan's filter is not restricted: on a local index it reads the
    // table's items (see needs_base_fetch).
    check_projected_attributes(&target, projection.as_ref(), None)?;
    let exclusive_start = start_key(&req, &target)?;
    let page = collect(
        api,
        &target,
        &rr,
        filter.as_ref(),
        projection.as_ref(),
        |visit| {
            let start = exclusive_start.as_ref();
            match index_name {
                Some(index) => Ok(api
                    .store
                    .scan_index(rr.table, index, segment, total, start, visit)?),
                None => Ok(api.store.scan(rr.table, segment, total, start, visit)?),
            }
        },
    )?;
    Ok(render(rr.table, &rr, page))
}
