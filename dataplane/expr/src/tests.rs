//! Tests of the public API: parsing, exact error messages, evaluation,
//! update application and projection.

use std::collections::HashMap;

use partita_model::{AttributeValue, Item, Map, Number};

use crate::*;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: &str) -> AttributeValue {
    match Number::parse(v) {
        Ok(x) => AttributeValue::N(x),
        Err(e) => panic!("bad number {v}: {e}"),
    }
}

fn ni(v: i64) -> AttributeValue {
    AttributeValue::N(Number::from_i64(v))
}

fn ss(v: &[&str]) -> AttributeValue {
    AttributeValue::Ss(v.iter().map(|x| x.to_string()).collect())
}

fn l(v: Vec<AttributeValue>) -> AttributeValue {
    AttributeValue::L(v)
}

fn m(entries: &[(&str, AttributeValue)]) -> AttributeValue {
    AttributeValue::M(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Map>(),
    )
}

fn item(entries: &[(&str, AttributeValue)]) -> Item {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Placeholder maps for one request.
#[derive(Default)]
struct Req {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Req {
    fn new() -> Req {
        Req::default()
    }
    fn name(mut self, k: &str, v: &str) -> Req {
        self.names.insert(k.into(), v.into());
        self
    }
    fn value(mut self, k: &str, v: AttributeValue) -> Req {
        self.values.insert(k.into(), v);
        self
    }
    fn attrs(&self) -> ExpressionAttributes<'_> {
        ExpressionAttributes::new(
            (!self.names.is_empty()).then_some(&self.names),
            (!self.values.is_empty()).then_some(&self.values),
        )
    }
    fn cond(&self, expr: &str) -> Result<Condition, String> {
        parse_condition(ExpressionKind::Condition, expr, &mut self.attrs()).map_err(|e| e.message)
    }
    fn filter(&self, expr: &str) -> Result<Condition, String> {
        parse_condition(ExpressionKind::Filter, expr, &mut self.attrs()).map_err(|e| e.message)
    }
    fn update(&self, expr: &str) -> Result<UpdateExpression, String> {
        parse_update(expr, &mut self.attrs()).map_err(|e| e.message)
    }
    fn projection(&self, expr: &str) -> Result<ProjectionExpression, String> {
        parse_projection(expr, &mut self.attrs()).map_err(|e| e.message)
    }
    fn key(&self, expr: &str, hash: &str, range: Option<&str>) -> Result<KeyCondition, String> {
        parse_key_condition(expr, &mut self.attrs(), hash, range).map_err(|e| e.message)
    }
    /// Parses `expr` as a condition and evaluates it against `it`.
    fn check(&self, expr: &str, it: &Item) -> bool {
        match self.cond(expr) {
            Ok(c) => match c.evaluate(Some(it)) {
                Ok(b) => b,
                Err(e) => panic!("{expr}: {e}"),
            },
            Err(e) => panic!("{expr}: {e}"),
        }
    }
    /// Parses and applies `expr` to a copy of `it`.
    fn apply(&self, expr: &str, it: &Item) -> Result<Item, String> {
        let u = self.update(expr).map_err(|e| format!("parse: {e}"))?;
        let mut out = it.clone();
        u.apply(&mut out).map_err(|e| e.message)?;
        Ok(out)
    }
}

fn err<T: std::fmt::Debug>(r: Result<T, String>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

fn ok<T>(r: Result<T, String>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn path(elems: &[&str]) -> Path {
    Path(
        elems
            .iter()
            .map(|e| match e.parse::<usize>() {
                Ok(i) => PathElement::Index(i),
                Err(_) => PathElement::Attribute(e.to_string()),
            })
            .collect(),
    )
}

mod conditions;
mod messages;
mod projections;
mod properties;
mod queries;
mod updates;
