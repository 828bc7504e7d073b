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

use partita_expr::{
    CompareOp, Condition, Operand, Path, PathElement, SetValue, SortKeyCondition, UpdateExpression,
};
use partita_model::{AttributeValue, Item, KeySchema, TableDefinition};

use super::lexer::Pos;
use super::parser::{CmpOp, Expr, Lit, PathExpr, Returning, Select, Statement, Step, UpdateAction};
use super::with_pos;
use crate::codec;
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
    pub access: Access,
    pub filter: Option<Condition>,
    /// `None` for `*`; else (output name, path) pairs.
    pub projection: Option<Vec<(String, Path)>>,
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

/// Binds parameters and converts syntax to expression ASTs.
struct Binder<'p> {
    params: &'p [AttributeValue],
}

impl Binder<'_> {
    /// The value of a literal, parameter or collection literal; `None` when
    /// `e` is not a value (a path, an operator, a call).
    fn value(&self, e: &Expr) -> Result<Option<AttributeValue>, ApiError> {
        Ok(Some(match e {
            Expr::Lit(Lit::Str(s), _) => AttributeValue::S(s.clone()),
            Expr::Lit(Lit::Num(n), _) => AttributeValue::N(codec::parse_number(n)?),
            Expr::Lit(Lit::Bool(b), _) => AttributeValue::Bool(*b),
            Expr::Lit(Lit::Null, _) => AttributeValue::Null,
            Expr::Lit(Lit::Missing, _) => {
                return Err(ApiError::validation(
                    "MISSING must be compared using IS operator",
                ))
            }
            Expr::Param(i, _) => match self.params.get(*i) {
                Some(v) => v.clone(),
                None => return Err(param_count_mismatch()),
            },
            Expr::List(items, _) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.required_value(item)?);
                }
                AttributeValue::L(out)
            }
            Expr::Struct(fields, pos) => AttributeValue::M(self.structure(fields, *pos)?),
            Expr::Bag(items, pos) => self.bag(items, *pos)?,
            _ => return Ok(None),
        }))
    }

    fn required_value(&self, e: &Expr) -> Result<AttributeValue, ApiError> {
        match self.value(e)? {
            Some(v) => Ok(v),
            None => Err(with_pos(
                &format!("Unsupported operation: {}", describe(e)),
                e.pos(),
            )),
        }
    }

    fn structure(&self, fields: &[(Expr, Expr)], pos: Pos) -> Result<Item, ApiError> {
        let mut out = Item::new();
        for (k, v) in fields {
            let name = match k {
                Expr::Lit(Lit::Str(s), _) => s.clone(),
                Expr::Param(..) => match self.value(k)? {
                    Some(AttributeValue::S(s)) => s,
                    Some(other) => {
                        return Err(with_pos(
                            &format!(
                                "Tuple keys must be of type String. Actual type: {} under root",
                                other.type_name()
                            ),
                            k.pos(),
                        ))
                    }
                    None => return Err(param_count_mismatch()),
                },
                other => {
                    return Err(with_pos(
                        &format!(
                            "Tuple keys must be of type String. Actual type: {} under root",
                            describe(other)
                        ),
                        other.pos(),
                    ))
                }
            };
            if out.contains_key(&name) {
                return Err(with_pos(
                    &format!("Duplicate keys in tuple. Key: {name} under root"),
                    k.pos(),
                ));
            }
            let value = self.required_value(v)?;
            out.insert(name, value);
        }
        Ok(out)
    }

    fn bag(&self, items: &[Expr], pos: Pos) -> Result<AttributeValue, ApiError> {
        if items.is_empty() {
            return Err(with_pos("Empty bags are not supported", pos));
        }
        let mixed = || {
            ApiError::validation(
                "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags",
            )
        };
        let values = items
            .iter()
            .map(|i| self.required_value(i))
            .collect::<Result<Vec<_>, _>>()?;
        let set = match &values[0] {
            AttributeValue::S(_) => AttributeValue::Ss(Vec::new()),
            AttributeValue::N(_) => AttributeValue::Ns(Vec::new()),
            AttributeValue::B(_) => AttributeValue::Bs(Vec::new()),
            _ => return Err(mixed()),
        };
        let mut set = set;
        for v in values {
            match (&mut set, v) {
                (AttributeValue::Ss(s), AttributeValue::S(x)) => {
                    if !s.contains(&x) {
                        s.push(x)
                    }
                }
                (AttributeValue::Ns(s), AttributeValue::N(x)) => {
                    if !s.iter().any(|n| n.cmp(&x) == std::cmp::Ordering::Equal) {
                        s.push(x)
                    }
                }
                (AttributeValue::Bs(s), AttributeValue::B(x)) => {
                    if !s.contains(&x) {
                        s.push(x)
                    }
                }
                _ => return Err(mixed()),
            }
        }
        Ok(set)
    }

    fn path(&self, p: &PathExpr) -> Result<Path, ApiError> {
        if p.root.is_empty() {
            return Err(ApiError::validation(
                "Path component cannot be an empty string",
            ));
        }
        let mut elems = vec![PathElement::Attribute(p.root.clone())];
        for step in &p.steps {
            elems.push(match step {
                Step::Field(f) if f.is_empty() => {
                    return Err(ApiError::validation(
                        "Path component cannot be an empty string",
                    ))
                }
                Step::Field(f) => PathElement::Attribute(f.clone()),
                Step::Index(i) => match i.parse::<usize>() {
                    Ok(n) => PathElement::Index(n),
                    Err(_) => {
                        return Err(ApiError::validation(format!(
                            "List index is not within the allowable range; index: [{i}]"
                        )))
                    }
                },
                Step::Wildcard => {
                    return Err(ApiError::validation(
                        "Wildcard path component like a[*].b are not supported",
                    ))
                }
            });
        }
        if elems.len() > partita_expr::MAX_PATH_DEPTH {
            return Err(ApiError::validation(
                "Nesting Levels have exceeded supported limits",
            ));
        }
        Ok(Path(elems))
    }

    fn operand(&self, e: &Expr) -> Result<Operand, ApiError> {
        if let Some(v) = self.value(e)? {
            return Ok(Operand::Value(v));
        }
        match e {
            Expr::Path(p) => Ok(Operand::Path(self.path(p)?)),
            Expr::Call(name, args, _) if name.eq_ignore_ascii_case("size") => match args.as_slice()
            {
                [Expr::Path(p)] => Ok(Operand::Size(self.path(p)?)),
                _ => Err(ApiError::validation(
                    "Incorrect operand type for operator or function; operator or function: size",
                )),
            },
            Expr::Call(name, _, _) => Err(unrecognized_function(name)),
            other => Err(with_pos(
                &format!("Unsupported operation: {}", describe(other)),
                other.pos(),
            )),
        }
    }

    fn path_arg(&self, e: &Expr, function: &str) -> Result<Path, ApiError> {
        match e {
            Expr::Path(p) => self.path(p),
            _ => Err(ApiError::validation(format!(
                "Incorrect operand type for operator or function; operator or function: {function}"
            ))),
        }
    }

    /// Converts a WHERE clause (or part of one) to a condition.
    fn condition(&self, e: &Expr) -> Result<Condition, ApiError> {
        Ok(match e {
            Expr::And(a, b) => {
                Condition::And(Box::new(self.condition(a)?), Box::new(self.condition(b)?))
            }
            Expr::Or(a, b) => {
                Condition::Or(Box::new(self.condition(a)?), Box::new(self.condition(b)?))
            }
            Expr::Not(a) => Condition::Not(Box::new(self.condition(a)?)),
            Expr::Cmp(op, a, b) => {
                let op = match op {
                    CmpOp::Eq => CompareOp::Eq,
                    CmpOp::Ne => CompareOp::Ne,
                    CmpOp::Lt => CompareOp::Lt,
                    CmpOp::Le => CompareOp::Le,
                    CmpOp::Gt => CompareOp::Gt,
                    CmpOp::Ge => CompareOp::Ge,
                };
                Condition::Compare(self.operand(a)?, op, self.operand(b)?)
            }
            Expr::Between(a, lo, hi) => {
                Condition::Between(self.operand(a)?, self.operand(lo)?, self.operand(hi)?)
            }
            Expr::In(a, list) => {
                let invalid = || {
                    ApiError::validation(
                        "IN operator must have a left hand argument of type Variable Reference and right hand argument of type Seq with at least one member",
                    )
                };
                let items = match list.as_ref() {
                    Expr::List(items, _) if !items.is_empty() => items
                        .iter()
                        .map(|i| self.operand(i))
                        .collect::<Result<Vec<_>, _>>()?,
                    Expr::Param(..) => match self.value(list)? {
                        Some(AttributeValue::L(values)) if !values.is_empty() => {
                            values.into_iter().map(Operand::Value).collect()
                        }
                        _ => return Err(invalid()),
                    },
                    _ => return Err(invalid()),
                };
                if items.len() > partita_expr::MAX_IN_OPERANDS {
                    return Err(ApiError::validation(
                        "Too many operands for the IN operator; maximum is 100",
                    ));
                }
                Condition::In(self.operand(a)?, items)
            }
            Expr::Is(a, not, ty) => {
                let Expr::Path(p) = a.as_ref() else {
                    return Err(ApiError::validation(
                        "The left hand side argument to IS must be a Variable Reference, Literal, or Path",
                    ));
                };
                let path = self.path(p)?;
                let type_name = match ty.as_str() {
                    "MISSING" => {
                        return Ok(if *not {
                            Condition::AttributeExists(path)
                        } else {
                            Condition::AttributeNotExists(path)
                        })
                    }
                    "NULL" => "NULL",
                    "BOOLEAN" | "BOOL" => "BOOL",
                    "BLOB" => "B",
                    "STRING" => "S",
                    "NUMERIC" | "NUMBER" | "DECIMAL" | "INT" | "INTEGER" | "FLOAT" => "N",
                    "STRUCT" | "TUPLE" => "M",
                    "LIST" => "L",
                    other => {
                        return Err(ApiError::validation(format!(
                            "Unsupported data type for IS operator: {other}. Supported data types are [MISSING, NULL, BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST]"
                        )))
                    }
                };
                let c = Condition::AttributeType(
                    path,
                    Operand::Value(AttributeValue::S(type_name.into())),
                );
                if *not {
                    Condition::Not(Box::new(c))
                } else {
                    c
                }
            }
            Expr::Call(name, args, _) => self.function(name, args)?,
            _ => {
                return Err(ApiError::validation(
                    "WHERE clause must contain an expression that resolves to a boolean",
                ))
            }
        })
    }

    fn function(&self, name: &str, args: &[Expr]) -> Result<Condition, ApiError> {
        let lower = name.to_ascii_lowercase();
        let arity = |n: usize| -> Result<(), ApiError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(ApiError::validation(format!(
                    "Incorrect number of operands for operator or function; operator or function: {lower}, number of operands: {}",
                    args.len()
                )))
            }
        };
        Ok(match lower.as_str() {
            "begins_with" => {
                arity(2)?;
                Condition::BeginsWith(self.operand(&args[0])?, self.operand(&args[1])?)
            }
            "contains" => {
                arity(2)?;
                Condition::Contains(self.operand(&args[0])?, self.operand(&args[1])?)
            }
            "attribute_exists" => {
                arity(1)?;
                Condition::AttributeExists(self.path_arg(&args[0], &lower)?)
            }
            "attribute_not_exists" => {
                arity(1)?;
                Condition::AttributeNotExists(self.path_arg(&args[0], &lower)?)
            }
            "attribute_type" => {
                arity(2)?;
                Condition::AttributeType(self.path_arg(&args[0], &lower)?, self.operand(&args[1])?)
            }
            "size" => {
                return Err(ApiError::validation(
                    "WHERE clause must contain an expression that resolves to a boolean",
                ))
            }
            _ => return Err(unrecognized_function(name)),
        })
    }

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
        let Expr::Struct(fields, pos) = item else {
            return Err(with_pos(
                "Unsupported format in item expression. Please use struct format {...} to express item values for insert statement.",
                item.pos(),
            ));
        };
        let item = self.structure(fields, *pos)?;
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

    fn set_value(&self, e: &Expr, depth: usize) -> Result<SetValue, ApiError> {
        if depth > super::parser::MAX_NESTING {
            return Err(super::malformed("Expression is nested too deeply"));
        }
        if let Some(v) = self.value(e)? {
            return Ok(SetValue::Operand(Operand::Value(v)));
        }
        Ok(match e {
            Expr::Path(p) => SetValue::Operand(Operand::Path(self.path(p)?)),
            Expr::Add(a, b) => SetValue::Plus(
                Box::new(self.set_value(a, depth + 1)?),
                Box::new(self.set_value(b, depth + 1)?),
            ),
            Expr::Sub(a, b) => SetValue::Minus(
                Box::new(self.set_value(a, depth + 1)?),
                Box::new(self.set_value(b, depth + 1)?),
            ),
            Expr::Call(name, args, _) => match (name.to_ascii_lowercase().as_str(), args.as_slice()) {
                ("list_append", [a, b]) => SetValue::ListAppend(
                    Box::new(self.set_value(a, depth + 1)?),
                    Box::new(self.set_value(b, depth + 1)?),
                ),
                ("if_not_exists", [Expr::Path(p), v]) => {
                    SetValue::IfNotExists(self.path(p)?, Box::new(self.set_value(v, depth + 1)?))
                }
                ("list_append" | "if_not_exists", _) => {
                    return Err(ApiError::validation(format!(
                        "Incorrect number of operands for operator or function; operator or function: {}, number of operands: {}",
                        name.to_ascii_lowercase(),
                        args.len()
                    )))
                }
                _ => return Err(unrecognized_function(name)),
            },
            Expr::Is(..) => return Err(ApiError::validation("IS operator is not supported in update expressions")),
            other => {
                return Err(ApiError::validation(format!(
                    "Unsupported operator in Update Expression. Operator: {}",
                    describe(other)
                )))
            }
        })
    }

    fn select(
        &self,
        s: &Select,
        def: &TableDefinition,
        consistent: bool,
    ) -> Result<ReadPlan, ApiError> {
        let schema = &def.key_schema;
        if let Some(index) = &s.index {
            let global = def.global_indexes.iter().any(|i| &i.name == index);
            let local = def.local_indexes.iter().any(|i| &i.name == index);
            if !global && !local {
                return Err(ApiError::validation(format!(
                    "The table does not have the specified index: {index}"
                )));
            }
            if global && consistent {
                return Err(ApiError::validation(
                    "Strongly consistent read is not supported on Global Secondary Indexes",
                ));
            }
            return Err(ApiError::validation(format!(
                "Queries and scans on the index {index} are not supported yet"
            )));
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
            access,
            filter,
            projection,
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

fn unrecognized_function(name: &str) -> ApiError {
    ApiError::validation(format!("Unrecognized function: {name}"))
}

pub fn param_count_mismatch() -> ApiError {
    ApiError::validation("Number of parameters in request and statement don't match.")
}

/// Names a kind of expression as DynamoDB's messages do.
fn describe(e: &Expr) -> &'static str {
    match e {
        Expr::Path(_) => "VariableReference",
        Expr::Lit(..) | Expr::Param(..) => "Literal",
        Expr::List(..) => "List",
        Expr::Struct(..) => "Struct",
        Expr::Bag(..) => "Bag",
        Expr::Cmp(..)
        | Expr::And(..)
        | Expr::Or(..)
        | Expr::Not(..)
        | Expr::Add(..)
        | Expr::Sub(..) => "NAry",
        Expr::Between(..) => "Between",
        Expr::In(..) => "In",
        Expr::Is(..) => "Typed",
        Expr::Call(..) => "CallAgg",
    }
}

#[cfg(test)]
mod tests;
