//! Resolution and semantic checks: turns the unresolved trees of
//! [`crate::syntax`] into the resolved [`crate::ast`], substituting
//! placeholders and enforcing DynamoDB's rules for reserved words, functions,
//! operand counts and types, path depth and path overlaps.
//!
//! The whole tree is always walked (so every used placeholder is recorded);
//! the first error of each category is kept and the most important category
//! is reported, so the outcome does not depend on where in the text a
//! problem sits.

use std::cmp::Ordering;

use partita_model::AttributeValue;

use crate::ast::{
    CompareOp, Condition, Operand, Path, PathElement, ProjectionExpression, SetValue,
    UpdateExpression,
};
use crate::eval::compare_scalars;
use crate::path::first_clash;
use crate::reserved::is_reserved;
use crate::syntax::{RawAction, RawCall, RawCond, RawElem, RawOperand, RawPath, RawUpdate};
use crate::{ExprError, ExpressionAttributes, ExpressionKind, MAX_IN_OPERANDS, MAX_PATH_DEPTH};

/// Error categories, most important first.
#[derive(Clone, Copy)]
enum Category {
    Structure = 0,
    Reserved = 1,
    FunctionName = 2,
    Undefined = 3,
    Semantic = 4,
    Paths = 5,
}

const CATEGORIES: usize = 6;

/// The valid type names of `attribute_type`, in DynamoDB's message order.
const TYPE_NAMES: [&str; 10] = ["B", "NULL", "SS", "BOOL", "L", "BS", "N", "NS", "S", "M"];

const CONDITION_FUNCTIONS: [&str; 6] = [
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
    "size",
];
const UPDATE_FUNCTIONS: [&str; 2] = ["if_not_exists", "list_append"];

pub struct Resolver<'r, 'a> {
    attrs: &'r mut ExpressionAttributes<'a>,
    kind: ExpressionKind,
    errors: [Option<String>; CATEGORIES],
}

fn op_symbol(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
    }
}

/// DynamoDB's long type names used by the ADD and DELETE operand messages.
fn long_type_name(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "STRING",
        AttributeValue::N(_) => "NUMBER",
        AttributeValue::B(_) => "BINARY",
        AttributeValue::Bool(_) => "BOOLEAN",
        AttributeValue::Null => "NULL",
        AttributeValue::M(_) => "MAP",
        AttributeValue::L(_) => "LIST",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

/// Renders a value as DynamoDB does in BETWEEN bound messages:
/// `AttributeValue: {N:10}`.
fn describe_value(v: &AttributeValue) -> String {
    let inner = match v {
        AttributeValue::S(s) => format!("S:{s}"),
        AttributeValue::N(n) => format!("N:{n}"),
        AttributeValue::B(b) => format!("B:{}", base64(b)),
        other => other.type_name().to_string(),
    };
    format!("AttributeValue: {{{inner}}}")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl<'r, 'a> Resolver<'r, 'a> {
    pub fn new(attrs: &'r mut ExpressionAttributes<'a>, kind: ExpressionKind) -> Resolver<'r, 'a> {
        Resolver {
            attrs,
            kind,
            errors: Default::default(),
        }
    }

    fn record(&mut self, category: Category, message: String) {
        let slot = &mut self.errors[category as usize];
        if slot.is_none() {
            *slot = Some(message);
        }
    }

    fn finish<T>(self, value: T) -> Result<T, ExprError> {
        match self.errors.into_iter().flatten().next() {
            Some(message) => Err(self.kind.error(&message)),
            None => Ok(value),
        }
    }

    // ---- entry points ----

    pub fn condition(mut self, raw: &RawCond) -> Result<Condition, ExprError> {
        let cond = self.cond(raw);
        self.finish(cond)
    }

    pub fn projection(mut self, raw: &[RawPath]) -> Result<ProjectionExpression, ExprError> {
        let paths: Vec<Path> = raw.iter().map(|p| self.path(p)).collect();
        if let Some(message) = first_clash(&paths.iter().collect::<Vec<_>>()) {
            self.record(Category::Paths, message);
        }
        self.finish(ProjectionExpression(paths))
    }

    pub fn update(mut self, raw: &RawUpdate) -> Result<UpdateExpression, ExprError> {
        if let Some(clause) = raw.repeated_clause {
            self.record(
                Category::Structure,
                format!(
                    "The \"{}\" section can only be used once in an update expression;",
                    clause.keyword()
                ),
            );
        }
        let mut update = UpdateExpression::default();
        let mut order: Vec<Path> = Vec::new();
        for action in &raw.actions {
            match action {
                RawAction::Set(path, value) => {
                    let path = self.path(path);
                    let value = self.set_value(value);
                    order.push(path.clone());
                    update.set.push((path, value));
                }
                RawAction::Remove(path) => {
                    let path = self.path(path);
                    order.push(path.clone());
                    update.remove.push(path);
                }
                RawAction::Add(path, value) => {
                    let path = self.path(path);
                    let value = self.value(value);
                    if !matches!(
                        value,
                        AttributeValue::N(_)
                            | AttributeValue::Ss(_)
                            | AttributeValue::Ns(_)
                            | AttributeValue::Bs(_)
                    ) {
                        self.record(
                            Category::Semantic,
                            format!(
                                "Incorrect operand type for operator or function; operator: ADD, operand type: {}",
                                long_type_name(&value)
                            ),
                        );
                    }
                    order.push(path.clone());
                    update.add.push((path, value));
                }
                RawAction::Delete(path, value) => {
                    let path = self.path(path);
                    let value = self.value(value);
                    if !matches!(
                        value,
                        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)
                    ) {
                        self.record(
                            Category::Semantic,
                            format!(
                                "Incorrect operand type for operator or function; operator: DELETE, operand type: {}",
                                long_type_name(&value)
                            ),
                        );
                    }
                    order.push(path.clone());
                    update.delete.push((path, value));
                }
            }
        }
        if let Some(message) = first_clash(&order.iter().collect::<Vec<_>>()) {
            self.record(Category::Paths, message);
        }
        self.finish(update)
    }

    // ---- leaves ----

    fn path(&mut self, raw: &RawPath) -> Path {
        let mut elems = Vec::with_capacity(raw.0.len());
        for elem in &raw.0 {
            elems.push(match elem {
                RawElem::Bare(word) => {
                    if is_reserved(word) {
                        self.record(
                            Category::Reserved,
                            format!("Attribute name is a reserved keyword; reserved keyword: {word}"),
                        );
                    }
                    PathElement::Attribute(word.clone())
                }
                RawElem::Name(placeholder) => match self.attrs.lookup_name(placeholder) {
                    Some(name) => PathElement::Attribute(name),
                    None => {
                        self.record(
                            Category::Undefined,
                            format!(
                                "An expression attribute name used in the document path is not defined; attribute name: {placeholder}"
                            ),
                        );
                        PathElement::Attribute(placeholder.clone())
                    }
                },
                RawElem::Index(i) => PathElement::Index(*i),
            });
        }
        if elems.len() > MAX_PATH_DEPTH {
            self.record(
                Category::Semantic,
                format!(
                    "The document path has too many nesting levels; nesting levels: {}",
                    elems.len()
                ),
            );
        }
        Path(elems)
    }

    fn value(&mut self, placeholder: &str) -> AttributeValue {
        match self.attrs.lookup_value(placeholder) {
            Some(v) => v,
            None => {
                self.record(
                    Category::Undefined,
                    format!(
                        "An expression attribute value used in expression is not defined; attribute value: {placeholder}"
                    ),
                );
                AttributeValue::Null
            }
        }
    }

    // ---- functions ----

    /// Records the error for a function used where it does not belong:
    /// unknown, of the wrong expression kind, or (`as_operand` / not) used as
    /// a value instead of a condition or the other way round.
    fn misplaced_function(&mut self, call: &RawCall) {
        let name = call.name.as_str();
        let known_condition = CONDITION_FUNCTIONS.contains(&name);
        let known_update = UPDATE_FUNCTIONS.contains(&name);
        let message = if !known_condition && !known_update {
            self.record(
                Category::FunctionName,
                format!("Invalid function name; function: {name}"),
            );
            return;
        } else if self.kind == ExpressionKind::Update {
            if known_update {
                format!("The function is not allowed to be used this way in an expression; function: {name}")
            } else {
                format!("The function is not allowed in an update expression; function: {name}")
            }
        } else if known_condition {
            format!("The function is not allowed to be used this way in an expression; function: {name}")
        } else {
            format!("The function is not allowed in a condition expression; function: {name}")
        };
        self.record(Category::Semantic, message);
    }

    fn check_arity(&mut self, call: &RawCall, n: usize) -> bool {
        if call.args.len() != n {
            self.record(
                Category::Semantic,
                format!(
                    "Incorrect number of operands for operator or function; operator or function: {}, number of operands: {}",
                    call.name,
                    call.args.len()
                ),
            );
            return false;
        }
        true
    }

    fn requires_path(&mut self, function: &str) {
        self.record(
            Category::Semantic,
            format!(
                "Operator or function requires a document path; operator or function: {function}"
            ),
        );
    }

    fn operand_type_error(&mut self, function: &str, value: &AttributeValue) {
        self.record(
            Category::Semantic,
            format!(
                "Incorrect operand type for operator or function; operator or function: {function}, operand type: {}",
                value.type_name()
            ),
        );
    }

    /// Resolves the single path argument of `size`, `attribute_exists`, ...
    fn path_argument(&mut self, call: &RawCall, index: usize) -> Path {
        match call.args.get(index) {
            Some(RawOperand::Path(p)) => self.path(p),
            Some(other) => {
                self.operand(other);
                self.requires_path(&call.name);
                Path(Vec::new())
            }
            None => Path(Vec::new()),
        }
    }

    // ---- conditions ----

    fn operand(&mut self, raw: &RawOperand) -> Operand {
        match raw {
            RawOperand::Path(p) => Operand::Path(self.path(p)),
            RawOperand::Value(v) => Operand::Value(self.value(v)),
            RawOperand::Call(call) if call.name == "size" => {
                self.check_arity(call, 1);
                for extra in call.args.iter().skip(1) {
                    self.operand(extra);
                }
                Operand::Size(self.path_argument(call, 0))
            }
            RawOperand::Call(call) => {
                for arg in &call.args {
                    self.operand(arg);
                }
                self.misplaced_function(call);
                Operand::Value(AttributeValue::Null)
            }
            RawOperand::Plus(a, b) | RawOperand::Minus(a, b) => {
                // The condition grammar never produces these.
                self.operand(a);
                self.operand(b);
                self.record(
                    Category::Structure,
                    "Arithmetic is not allowed in a condition;".into(),
                );
                Operand::Value(AttributeValue::Null)
            }
        }
    }

    /// Rejects literal operands that the ordering operators cannot compare.
    fn check_ordered_operand(&mut self, symbol: &str, operand: &Operand) {
        if let Operand::Value(v) = operand {
            if !matches!(
                v,
                AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)
            ) {
                self.operand_type_error(symbol, v);
            }
        }
    }

    fn check_distinct(&mut self, operator: &str, first: &Operand, rest: &[&Operand]) {
        if let Operand::Path(p) = first {
            if rest.iter().any(|o| matches!(o, Operand::Path(q) if q == p)) {
                self.record(
                    Category::Semantic,
                    format!(
                        "The first operand must be distinct from the remaining operands for this operator or function; operator: {operator}, first operand: {}",
                        p.bracketed()
                    ),
                );
            }
        }
    }

    fn cond(&mut self, raw: &RawCond) -> Condition {
        match raw {
            RawCond::Paren(inner) => {
                if matches!(**inner, RawCond::Paren(_)) {
                    self.record(
                        Category::Structure,
                        "The expression has redundant parentheses;".into(),
                    );
                }
                self.cond(inner)
            }
            RawCond::And(a, b) => Condition::And(Box::new(self.cond(a)), Box::new(self.cond(b))),
            RawCond::Or(a, b) => Condition::Or(Box::new(self.cond(a)), Box::new(self.cond(b))),
            RawCond::Not(a) => Condition::Not(Box::new(self.cond(a))),
            RawCond::Compare(a, op, b) => {
                let a = self.operand(a);
                let b = self.operand(b);
                if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                    self.check_ordered_operand(op_symbol(*op), &a);
                    self.check_ordered_operand(op_symbol(*op), &b);
                }
                self.check_distinct(op_symbol(*op), &a, &[&b]);
                Condition::Compare(a, *op, b)
            }
            RawCond::Between(a, lo, hi) => {
                let a = self.operand(a);
                let lo = self.operand(lo);
                let hi = self.operand(hi);
                for o in [&a, &lo, &hi] {
                    self.check_ordered_operand("BETWEEN", o);
                }
                self.check_distinct("BETWEEN", &a, &[&lo, &hi]);
                if let (Operand::Value(l), Operand::Value(h)) = (&lo, &hi) {
                    if compare_scalars(l, h) == Some(Ordering::Greater) {
                        self.record(
                            Category::Semantic,
                            format!(
                                "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: {}, upper bound operand: {}",
                                describe_value(l),
                                describe_value(h)
                            ),
                        );
                    }
                }
                Condition::Between(a, lo, hi)
            }
            RawCond::In(a, list) => {
                let a = self.operand(a);
                let list: Vec<Operand> = list.iter().map(|o| self.operand(o)).collect();
                if list.len() > MAX_IN_OPERANDS {
                    self.record(
                        Category::Semantic,
                        format!(
                            "The IN operator is provided with too many operands; number of operands: {}",
                            list.len()
                        ),
                    );
                }
                self.check_distinct("IN", &a, &list.iter().collect::<Vec<_>>());
                Condition::In(a, list)
            }
            RawCond::Call(call) => self.condition_function(call),
        }
    }

    fn condition_function(&mut self, call: &RawCall) -> Condition {
        let fallback = Condition::AttributeExists(Path(Vec::new()));
        match call.name.as_str() {
            "attribute_exists" | "attribute_not_exists" => {
                let arity_ok = self.check_arity(call, 1);
                let path = self.path_argument(call, 0);
                for extra in call.args.iter().skip(1) {
                    self.operand(extra);
                }
                if !arity_ok {
                    return fallback;
                }
                if call.name == "attribute_exists" {
                    Condition::AttributeExists(path)
                } else {
                    Condition::AttributeNotExists(path)
                }
            }
            "attribute_type" => {
                let arity_ok = self.check_arity(call, 2);
                let path = self.path_argument(call, 0);
                let ty = call.args.get(1).map(|o| self.operand(o));
                for extra in call.args.iter().skip(2) {
                    self.operand(extra);
                }
                let Some(ty) = ty.filter(|_| arity_ok) else {
                    return fallback;
                };
                if let Operand::Value(v) = &ty {
                    match v {
                        AttributeValue::S(name) => {
                            if !TYPE_NAMES.contains(&name.as_str()) {
                                self.record(
                                    Category::Semantic,
                                    format!(
                                        "Invalid attribute type name found; type: {name}, valid types: {{{}}}",
                                        TYPE_NAMES.join(",")
                                    ),
                                );
                            }
                        }
                        other => self.operand_type_error("attribute_type", other),
                    }
                }
                Condition::AttributeType(path, ty)
            }
            "begins_with" | "contains" => {
                let arity_ok = self.check_arity(call, 2);
                let args: Vec<Operand> = call.args.iter().map(|o| self.operand(o)).collect();
                let (Some(a), Some(b)) = (args.first().cloned(), args.get(1).cloned()) else {
                    return fallback;
                };
                if !arity_ok {
                    return fallback;
                }
                if call.name == "begins_with" {
                    for o in [&a, &b] {
                        if let Operand::Value(v) = o {
                            if !matches!(v, AttributeValue::S(_) | AttributeValue::B(_)) {
                                self.operand_type_error("begins_with", v);
                            }
                        }
                    }
                    Condition::BeginsWith(a, b)
                } else {
                    Condition::Contains(a, b)
                }
            }
            _ => {
                for arg in &call.args {
                    if let RawOperand::Path(p) = arg {
                        self.path(p);
                    } else {
                        self.operand(arg);
                    }
                }
                self.misplaced_function(call);
                fallback
            }
        }
    }

    // ---- update values ----

    fn set_value(&mut self, raw: &RawOperand) -> SetValue {
        match raw {
            RawOperand::Path(p) => SetValue::Operand(Operand::Path(self.path(p))),
            RawOperand::Value(v) => SetValue::Operand(Operand::Value(self.value(v))),
            RawOperand::Plus(a, b) | RawOperand::Minus(a, b) => {
                let symbol = if matches!(raw, RawOperand::Plus(..)) {
                    "+"
                } else {
                    "-"
                };
                let a = self.set_value(a);
                let b = self.set_value(b);
                for side in [&a, &b] {
                    if let SetValue::Operand(Operand::Value(v)) = side {
                        if !matches!(v, AttributeValue::N(_)) {
                            self.operand_type_error(symbol, v);
                        }
                    }
                }
                if symbol == "+" {
                    SetValue::Plus(Box::new(a), Box::new(b))
                } else {
                    SetValue::Minus(Box::new(a), Box::new(b))
                }
            }
            RawOperand::Call(call) => match call.name.as_str() {
                "if_not_exists" => {
                    let arity_ok = self.check_arity(call, 2);
                    let path = match call.args.first() {
                        Some(RawOperand::Path(p)) => Some(self.path(p)),
                        Some(other) => {
                            self.set_value(other);
                            self.requires_path("if_not_exists");
                            None
                        }
                        None => None,
                    };
                    let values: Vec<SetValue> = call
                        .args
                        .iter()
                        .skip(1)
                        .map(|o| self.set_value(o))
                        .collect();
                    match (path, values.into_iter().next()) {
                        (Some(path), Some(value)) if arity_ok => {
                            SetValue::IfNotExists(path, Box::new(value))
                        }
                        _ => SetValue::Operand(Operand::Value(AttributeValue::Null)),
                    }
                }
                "list_append" => {
                    let arity_ok = self.check_arity(call, 2);
                    let args: Vec<SetValue> = call.args.iter().map(|o| self.set_value(o)).collect();
                    for arg in &args {
                        if let SetValue::Operand(Operand::Value(v)) = arg {
                            if !matches!(v, AttributeValue::L(_)) {
                                self.operand_type_error("list_append", v);
                            }
                        }
                    }
                    let mut args = args.into_iter();
                    match (args.next(), args.next()) {
                        (Some(a), Some(b)) if arity_ok => {
                            SetValue::ListAppend(Box::new(a), Box::new(b))
                        }
                        _ => SetValue::Operand(Operand::Value(AttributeValue::Null)),
                    }
                }
                _ => {
                    for arg in &call.args {
                        self.set_value(arg);
                    }
                    self.misplaced_function(call);
                    SetValue::Operand(Operand::Value(AttributeValue::Null))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
