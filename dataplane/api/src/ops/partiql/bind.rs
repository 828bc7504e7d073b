//! Binding: the request's parameters and the statement's literals become
//! attribute values, and WHERE clauses, paths and SET values become the
//! `partita-expr` ASTs (`Condition`, `Path`, `SetValue`) that the expression
//! API evaluates too. Conversion recursion follows the parse tree, whose
//! nesting the parser bounds.

use partita_expr::{CompareOp, Condition, Operand, Path, PathElement, SetValue};
use partita_model::{AttributeValue, Item};

use super::lexer::Pos;
use super::parser::{CmpOp, Expr, Lit, PathExpr, Step};
use super::plan::param_count_mismatch;
use super::with_pos;
use crate::codec;
use crate::error::ApiError;

/// Binds parameters and converts syntax to expression ASTs.
pub(super) struct Binder<'p> {
    pub params: &'p [AttributeValue],
}

impl Binder<'_> {
    /// The value of a literal, parameter or collection literal; `None` when
    /// `e` is not a value (a path, an operator, a call).
    pub(super) fn value(&self, e: &Expr) -> Result<Option<AttributeValue>, ApiError> {
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
            Expr::Struct(fields, _) => AttributeValue::M(self.structure(fields)?),
            Expr::Bag(items, pos) => self.bag(items, *pos)?,
            _ => return Ok(None),
        }))
    }

    pub(super) fn required_value(&self, e: &Expr) -> Result<AttributeValue, ApiError> {
        match self.value(e)? {
            Some(v) => Ok(v),
            None => Err(with_pos(
                &format!("Unsupported operation: {}", describe(e)),
                e.pos(),
            )),
        }
    }

    pub(super) fn structure(&self, fields: &[(Expr, Expr)]) -> Result<Item, ApiError> {
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

    pub(super) fn bag(&self, items: &[Expr], pos: Pos) -> Result<AttributeValue, ApiError> {
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

    pub(super) fn path(&self, p: &PathExpr) -> Result<Path, ApiError> {
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

    pub(super) fn operand(&self, e: &Expr) -> Result<Operand, ApiError> {
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

    pub(super) fn path_arg(&self, e: &Expr, function: &str) -> Result<Path, ApiError> {
        match e {
            Expr::Path(p) => self.path(p),
            _ => Err(ApiError::validation(format!(
                "Incorrect operand type for operator or function; operator or function: {function}"
            ))),
        }
    }

    /// Converts a WHERE clause (or part of one) to a condition.
    pub(super) fn condition(&self, e: &Expr) -> Result<Condition, ApiError> {
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

    pub(super) fn function(&self, name: &str, args: &[Expr]) -> Result<Condition, ApiError> {
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

    pub(super) fn set_value(&self, e: &Expr, depth: usize) -> Result<SetValue, ApiError> {
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
}

pub(super) fn unrecognized_function(name: &str) -> ApiError {
    ApiError::validation(format!("Unrecognized function: {name}"))
}

/// Names a kind of expression as DynamoDB's messages do.
pub(super) fn describe(e: &Expr) -> &'static str {
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
