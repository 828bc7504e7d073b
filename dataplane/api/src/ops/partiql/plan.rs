//! From a parsed statement, the table's definition and the request's
//! parameters to storage operations: a Get, Query or Scan with a filter and
//! a projection for SELECT; a conditional Put, Update or Delete for the
//! writes. WHERE clauses, SET and REMOVE become the `partita-expr` ASTs, so
//! conditions and updates are evaluated by the same code as the expression
//! API.
//!
//! Key rules (DynamoDB's): a SELECT whose top-level AND terms hold an
//! equality on every key attribute reads one item; with an equality on the
//! partition key it queries that partition in key order (narrowed by one
//! sort key condition when there is one); otherwise it scans. The whole
//! WHERE clause is always evaluated on each item read, so narrowing never
//! changes the result. UPDATE and DELETE need an equality on every key
//! attribute; their other terms become the write's condition.

use partita_expr::{Condition, Path, PathElement, SortKeyCondition, UpdateExpression};
use partita_model::{AttributeValue, Item, KeySchema, TableDefinition};

use super::bind::Binder;
use super::parser::{CmpOp, Expr, PathExpr, Returning, Select, Statement, UpdateAction};
use super::with_pos;
use crate::error::ApiError;
use crate::ops::common::{validate_item_key, validate_key, INVALID};

/// How a SELECT reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    Get(Item),
    Query {
        hash: AttributeValue,
        sort: Option<SortKeyCondition>,
        forward: bool,
    },
    Scan,
}

/// A planned SELECT.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    pub table: String,
    /// The secondary index read, if any.
    pub index: Option<String>,
    pub access: Access,
    pub filter: Option<Condition>,
    /// `None` for `*`; else (output name, path) pairs.
    pub projection: Option<Vec<(String, Path)>>,
    /// True when the WHERE clause holds nothing but key equalities (what
    /// batches and transactions require of a SELECT).
    pub key_terms_only: bool,
}

impl ReadPlan {
    /// Returns whether an item read passes the WHERE clause.
    pub fn matches(&self, item: &Item) -> Result<bool, ApiError> {
        match &self.filter {
            None => Ok(true),
            Some(f) => Ok(f.evaluate(Some(item))?),
        }
    }

    /// Returns the item as the SELECT list shapes it: nested paths are
    /// returned under their last name (`a.b[1]` as `b[1]`).
    pub fn project(&self, item: Item) -> Item {
        match &self.projection {
            None => item,
            Some(paths) => paths
                .iter()
                .filter_map(|(name, path)| path.get(&item).map(|v| (name.clone(), v.clone())))
                .collect(),
        }
    }
}

/// A planned write of one item.
#[derive(Clone, Debug)]
pub enum WritePlan {
    /// INSERT: a put that must not replace an item.
    Insert { table: String, item: Item },
    Update {
        table: String,
        key: Item,
        update: UpdateExpression,
        condition: Condition,
        returning: Option<Returning>,
    },
    Delete {
        table: String,
        key: Item,
        condition: Option<Condition>,
        returning: Option<Returning>,
    },
    /// EXISTS(SELECT ...) in a transaction: the item must exist and match.
    Check {
        table: String,
        key: Item,
        condition: Condition,
    },
}

impl WritePlan {
    pub fn table(&self) -> &str {
        match self {
            WritePlan::Insert { table, .. }
            | WritePlan::Update { table, .. }
            | WritePlan::Delete { table, .. }
            | WritePlan::Check { table, .. } => table,
        }
    }

    /// Returns the primary key of the item written.
    pub fn key(&self, schema: &KeySchema) -> Option<Item> {
        match self {
            WritePlan::Insert { item, .. } => schema.extract_key(item),
            WritePlan::Update { key, .. }
            | WritePlan::Delete { key, .. }
            | WritePlan::Check { key, .. } => Some(key.clone()),
        }
    }

    pub fn returning(&self) -> Option<Returning> {
        match self {
            WritePlan::Update { returning, .. } | WritePlan::Delete { returning, .. } => *returning,
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Plan {
    Read(ReadPlan),
    Write(WritePlan),
}

/// Plans `stmt` against `def` with the request's parameters (their count
/// already checked). `consistent` is the request's ConsistentRead.
pub fn plan(
    stmt: &Statement,
    def: &TableDefinition,
    params: &[AttributeValue],
    consistent: bool,
) -> Result<Plan, ApiError> {
    let b = Binder { params };
    match stmt {
        Statement::Select(s) => Ok(Plan::Read(b.select(s, def, consistent)?)),
        Statement::Insert { table, item } => Ok(Plan::Write(b.insert(table, item, def)?)),
        Statement::Update {
            table,
            actions,
            filter,
            returning,
        } => {
            let (key, rest) = b.write_key(filter.as_ref(), &def.key_schema)?;
            let update = b.update(actions, &def.key_schema)?;
            let exists =
                Condition::AttributeExists(Path::attribute(def.key_schema.hash.name.clone()));
            let condition = match rest {
                Some(c) => Condition::And(Box::new(exists), Box::new(c)),
                None => exists,
            };
            Ok(Plan::Write(WritePlan::Update {
                table: table.clone(),
                key,
                update,
                condition,
                returning: *returning,
            }))
        }
        Statement::Delete {
            table,
            filter,
            returning,
        } => {
            if let Some(r) = returning.filter(|r| !r.all || r.new) {
                return Err(ApiError::validation(format!(
                    "Invalid returning clause: RETURNING {}. Only RETURNING ALL OLD * is allowed in DELETE statements.",
                    r.text()
                )));
            }
            let (key, condition) = b.write_key(filter.as_ref(), &def.key_schema)?;
            Ok(Plan::Write(WritePlan::Delete {
                table: table.clone(),
                key,
                condition,
                returning: *returning,
            }))
        }
        Statement::Exists(s) => {
            if s.index.is_some() {
                return Err(ApiError::validation(
                    "Operations on indices are not supported in transactions",
                ));
            }
            let (key, rest) = b
                .write_key(s.filter.as_ref(), &def.key_schema)
                .map_err(|e| {
                    if e.message.starts_with("Where clause") {
                        ApiError::validation(
                            "EXISTS() must contain a single item read with additional condition",
                        )
                    } else {
                        e
                    }
                })?;
            let exists =
                Condition::AttributeExists(Path::attribute(def.key_schema.hash.name.clone()));
            let condition = match rest {
                Some(c) => Condition::And(Box::new(exists), Box::new(c)),
                None => exists,
            };
            Ok(Plan::Write(WritePlan::Check {
                table: s.table.clone(),
                key,
                condition,
            }))
        }
    }
}

fn schema_mismatch(name: &str) -> ApiError {
    ApiError::validation(format!(
        "Key attribute's data type should match its data type in table's schema: Key {name}"
    ))
}

fn incomplete_key() -> ApiError {
    ApiError::validation("Where clause does not contain a mandatory equality on all key attributes")
}

/// Splits a WHERE clause into its top-level AND terms, left to right.
/// Iterative, so long chains cannot overflow the stack.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::And(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            other => out.push(other),
        }
    }
    out
}

/// Joins conditions with AND, left-associated.
fn and_all(conds: Vec<Condition>) -> Option<Condition> {
    let mut iter = conds.into_iter();
    let first = iter.next()?;
    Some(iter.fold(first, |acc, c| Condition::And(Box::new(acc), Box::new(c))))
}

impl Binder<'_> {
    /// A top-level term `key = value` (either way round) on a plain
    /// attribute name: returns the name and the value.
    fn equality<'e>(&self, e: &'e Expr) -> Result<Option<(&'e str, AttributeValue)>, ApiError> {
        let Expr::Cmp(CmpOp::Eq, a, b) = e else {
            return Ok(None);
        };
        for (p, v) in [(a, b), (b, a)] {
            if let Expr::Path(PathExpr { root, steps, .. }) = p.as_ref() {
                if steps.is_empty() {
                    if let Some(value) = self.value(v)? {
                        return Ok(Some((root.as_str(), value)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// For UPDATE, DELETE and EXISTS: the full primary key from the WHERE
    /// clause's equalities, and the remaining terms as a condition.
    fn write_key(
        &self,
        filter: Option<&Expr>,
        schema: &KeySchema,
    ) -> Result<(Item, Option<Condition>), ApiError> {
        let Some(filter) = filter else {
            return Err(incomplete_key());
        };
        let mut key = Item::new();
        let mut rest = Vec::new();
        for term in conjuncts(filter) {
            match self.equality(term)? {
                Some((name, value)) if schema.is_key_attribute(name) => {
                    if key.contains_key(name) {
                        return Err(ApiError::validation(format!(
                            "Multiple conditions on same key {name}. Only single item Update/Insert/Delete are supported"
                        )));
                    }
                    key.insert(name.to_string(), value);
                }
                _ => rest.push(self.condition(term)?),
            }
        }
        for attr in schema.attributes() {
            match key.get(&attr.name) {
                None => return Err(incomplete_key()),
                Some(v) if !attr.scalar_type.matches(v) => return Err(schema_mismatch(&attr.name)),
                Some(_) => {}
            }
        }
        validate_key(schema, &key)?;
        Ok((key, and_all(rest)))
    }

    fn insert(
        &self,
        table: &str,
        item: &Expr,
        def: &TableDefinition,
    ) -> Result<WritePlan, ApiError> {
        let Expr::Struct(fields, _) = item else {
            return Err(with_pos(
                "Unsupported format in item expression. Please use struct format {...} to express item values for insert statement.",
                item.pos(),
            ));
        };
        let item = self.structure(fields)?;
        for attr in def.key_schema.attributes() {
            match item.get(&attr.name) {
                None => {
                    return Err(ApiError::validation(format!(
                        "Key attribute should be present in the item: Key {}",
                        attr.name
                    )))
                }
                Some(v) if !attr.scalar_type.matches(v) => return Err(schema_mismatch(&attr.name)),
                Some(_) => {}
            }
        }
        validate_item_key(&def.key_schema, &item)?;
        crate::ops::common::check_item_size(&item)?;
        Ok(WritePlan::Insert {
            table: table.to_string(),
            item,
        })
    }

    fn update(
        &self,
        actions: &[UpdateAction],
        schema: &KeySchema,
    ) -> Result<UpdateExpression, ApiError> {
        let mut update = UpdateExpression::default();
        for action in actions {
            let target = match action {
                UpdateAction::Set(p, _) | UpdateAction::Remove(p) => p,
            };
            if schema.is_key_attribute(&target.root) {
                return Err(ApiError::validation(format!(
                    "{INVALID}Cannot update attribute {}. This attribute is part of the key",
                    target.root
                )));
            }
            let path = self.path(target)?;
            match action {
                UpdateAction::Remove(_) => update.remove.push(path),
                UpdateAction::Set(_, value) => match value {
                    Expr::Call(name, args, _)
                        if name.eq_ignore_ascii_case("set_add")
                            || name.eq_ignore_ascii_case("set_delete") =>
                    {
                        let op = name.to_ascii_uppercase();
                        let op = op.trim_start_matches("SET_");
                        if args.len() != 2 {
                            return Err(ApiError::validation(format!(
                                "SET_{op} must have exactly two arguments"
                            )));
                        }
                        match &args[0] {
                            Expr::Path(p) if self.path(p)? == path => {}
                            _ => {
                                return Err(ApiError::validation(format!(
                                    "The first argument to SET_{op} must equal the assignment value"
                                )))
                            }
                        }
                        let set = match self.value(&args[1])? {
                            Some(
                                v @ (AttributeValue::Ss(_)
                                | AttributeValue::Ns(_)
                                | AttributeValue::Bs(_)),
                            ) => v,
                            _ => {
                                return Err(ApiError::validation(format!(
                                    "The second argument to SET_{op} must be a value with type SET"
                                )))
                            }
                        };
                        if op == "ADD" {
                            update.add.push((path, set));
                        } else {
                            update.delete.push((path, set));
                        }
                    }
                    other => {
                        let v = self.set_value(other, 0)?;
                        update.set.push((path, v));
                    }
                },
            }
        }
        Ok(update)
    }

    fn select(
        &self,
        s: &Select,
        def: &TableDefinition,
        consistent: bool,
    ) -> Result<ReadPlan, ApiError> {
        let mut schema = &def.key_schema;
        if let Some(index) = &s.index {
            let global = def.global_indexes.iter().find(|i| &i.name == index);
            let local = def.local_indexes.iter().find(|i| &i.name == index);
            let Some(found) = global.or(local) else {
                return Err(ApiError::validation(format!(
                    "The table does not have the specified index: {index}"
                )));
            };
            if global.is_some() && consistent {
                return Err(ApiError::validation(
                    "Strongly consistent read is not supported on Global Secondary Indexes",
                ));
            }
            schema = &found.key_schema;
        }
        let projection = match &s.projection {
            None => None,
            Some(paths) => {
                let mut out: Vec<(String, Path)> = Vec::with_capacity(paths.len());
                for p in paths {
                    let path = self.path(p)?;
                    let name = output_name(&path);
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(ApiError::validation(format!(
                            "Duplicate identifiers in select clause: {name}"
                        )));
                    }
                    out.push((name, path));
                }
                Some(out)
            }
        };
        let filter = match &s.filter {
            Some(f) => Some(self.condition(f)?),
            None => None,
        };
        let mut hash = None;
        let mut range_eq = None;
        let mut sort = None;
        let mut key_terms_only = true;
        if let Some(f) = &s.filter {
            for term in conjuncts(f) {
                if let Some((name, value)) = self.equality(term)? {
                    if let Some(attr) = schema.attributes().find(|a| a.name == name) {
                        if !attr.scalar_type.matches(&value) {
                            return Err(schema_mismatch(name));
                        }
                        if name == schema.hash.name {
                            hash.get_or_insert(value);
                        } else {
                            range_eq.get_or_insert(value);
                        }
                        continue;
                    }
                }
                key_terms_only = false;
                if let Some(range) = &schema.range {
                    if let Some(c) = self.sort_condition(term, &range.name)? {
                        let values: Vec<&AttributeValue> = match &c {
                            SortKeyCondition::Between(a, b) => vec![a, b],
                            SortKeyCondition::Eq(v)
                            | SortKeyCondition::Lt(v)
                            | SortKeyCondition::Le(v)
                            | SortKeyCondition::Gt(v)
                            | SortKeyCondition::Ge(v)
                            | SortKeyCondition::BeginsWith(v) => vec![v],
                        };
                        let bad_begins = matches!(c, SortKeyCondition::BeginsWith(_))
                            && range.scalar_type == partita_model::ScalarType::N;
                        if bad_begins || values.iter().any(|v| !range.scalar_type.matches(v)) {
                            return Err(schema_mismatch(&range.name));
                        }
                        sort.get_or_insert(c);
                    }
                }
            }
        }
        let mut forward = true;
        if !s.order_by.is_empty() {
            if s.filter.is_none() {
                return Err(ApiError::validation(
                    "Must have WHERE clause in the statement when using ORDER BY clause.",
                ));
            }
            for (name, desc) in &s.order_by {
                if !schema.is_key_attribute(name) {
                    return Err(ApiError::validation(format!(
                        "Variable reference {name} in ORDER BY clause must be part of the primary key"
                    )));
                }
                if schema.range.as_ref().is_some_and(|r| &r.name == name) || schema.range.is_none()
                {
                    forward = !desc;
                }
            }
            if hash.is_none() {
                return Err(ApiError::validation(
                    "Must have at least one non-optional hash key condition in WHERE clause when using ORDER BY clause.",
                ));
            }
        }
        let access = match hash {
            None => Access::Scan,
            // An index has no single-item read: a query on its full key.
            Some(h) if s.index.is_some() => Access::Query {
                hash: h,
                sort: range_eq.map(SortKeyCondition::Eq).or(sort),
                forward,
            },
            Some(h) => match (&schema.range, range_eq) {
                (None, _) => Access::Get(Item::from([(schema.hash.name.clone(), h)])),
                (Some(r), Some(v)) => Access::Get(Item::from([
                    (schema.hash.name.clone(), h),
                    (r.name.clone(), v),
                ])),
                (Some(_), None) => Access::Query {
                    hash: h,
                    sort,
                    forward,
                },
            },
        };
        if let Access::Get(key) = &access {
            validate_key(schema, key)?;
        }
        Ok(ReadPlan {
            table: s.table.clone(),
            index: s.index.clone(),
            access,
            filter,
            projection,
            key_terms_only,
        })
    }

    /// A term that narrows a Query on the sort key `range`.
    fn sort_condition(&self, e: &Expr, range: &str) -> Result<Option<SortKeyCondition>, ApiError> {
        let is_range = |x: &Expr| matches!(x, Expr::Path(PathExpr { root, steps, .. }) if root == range && steps.is_empty());
        Ok(match e {
            Expr::Cmp(op, a, b) => {
                let (v, op) = if is_range(a) {
                    (self.value(b)?, *op)
                } else if is_range(b) {
                    let flipped = match op {
                        CmpOp::Lt => CmpOp::Gt,
                        CmpOp::Le => CmpOp::Ge,
                        CmpOp::Gt => CmpOp::Lt,
                        CmpOp::Ge => CmpOp::Le,
                        other => *other,
                    };
                    (self.value(a)?, flipped)
                } else {
                    (None, *op)
                };
                match (v, op) {
                    (Some(v), CmpOp::Lt) => Some(SortKeyCondition::Lt(v)),
                    (Some(v), CmpOp::Le) => Some(SortKeyCondition::Le(v)),
                    (Some(v), CmpOp::Gt) => Some(SortKeyCondition::Gt(v)),
                    (Some(v), CmpOp::Ge) => Some(SortKeyCondition::Ge(v)),
                    _ => None,
                }
            }
            Expr::Between(a, lo, hi) if is_range(a) => match (self.value(lo)?, self.value(hi)?) {
                (Some(l), Some(h)) => {
                    // An empty range reads nothing; leave it to the filter.
                    let ordered = match (&l, &h) {
                        (AttributeValue::N(x), AttributeValue::N(y)) => x <= y,
                        (AttributeValue::S(x), AttributeValue::S(y)) => {
                            x.as_bytes() <= y.as_bytes()
                        }
                        (AttributeValue::B(x), AttributeValue::B(y)) => x <= y,
                        _ => true,
                    };
                    ordered.then_some(SortKeyCondition::Between(l, h))
                }
                _ => None,
            },
            Expr::Call(name, args, _)
                if name.eq_ignore_ascii_case("begins_with")
                    && args.len() == 2
                    && is_range(&args[0]) =>
            {
                self.value(&args[1])?.map(SortKeyCondition::BeginsWith)
            }
            _ => None,
        })
    }
}

/// The name a SELECT list entry is returned under: the path's last
/// attribute name followed by any list indexes after it.
fn output_name(path: &Path) -> String {
    let start = path
        .0
        .iter()
        .rposition(|e| matches!(e, PathElement::Attribute(_)))
        .unwrap_or(0);
    let mut name = String::new();
    for e in &path.0[start..] {
        match e {
            PathElement::Attribute(a) => name.push_str(a),
            PathElement::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    name
}

pub fn param_count_mismatch() -> ApiError {
    ApiError::validation("Number of parameters in request and statement don't match.")
}

#[cfg(test)]
mod tests;
