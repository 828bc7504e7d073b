//! IAM identity-based policy documents: parsing and evaluation.
//!
//! A document is the JSON users write on AWS (`Version`, `Statement` with
//! `Effect`, `Action`/`NotAction`, `Resource`/`NotResource`, `Condition`).
//! Parsing is strict (unknown elements, `Principal`, unknown operators are
//! errors naming where they are) so a typo never silently widens access.
//!
//! Evaluation follows IAM's rules for identity policies: an applicable
//! explicit Deny wins, otherwise an applicable Allow allows, otherwise the
//! request is implicitly denied. Inside a statement, condition operators
//! are ANDed, keys within an operator are ANDed, values for one key are
//! ORed. Absent keys: positive operators are false, negated ones
//! (`StringNotEquals`, ...) true, `...IfExists` true, `ForAllValues` true
//! (vacuously), `ForAnyValue` false, `Null` tests presence.
//!
//! One addition for request parts whose values cannot be known before the
//! request runs (the partition keys a Scan reads): such keys are *unknown*
//! in the [`ContextKeys`], and a condition on an unknown key never lets an
//! Allow apply and always lets a Deny apply. This is how a Scan is denied
//! under a `dynamodb:LeadingKeys` condition, as in DynamoDB.
//!
//! Policy variables (`${aws:username}`, `${aws:userid}`, any single-valued
//! request key, `${*}`, `${?}`, `${$}`, and defaults `${key, 'value'}`) are
//! substituted in `Resource` and condition values of `2012-10-17`
//! documents; substituted text always matches literally.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A parse error naming the element it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> PolicyError {
    PolicyError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// A parsed policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// True for `2012-10-17` (policy variables are substituted).
    variables: bool,
    statements: Vec<Statement>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq)]
struct Statement {
    effect: Effect,
    actions: Vec<Pattern>,
    not_action: bool,
    resources: Vec<Pattern>,
    not_resource: bool,
    conditions: Vec<Condition>,
    /// True when a condition tests `dynamodb:LeadingKeys`.
    mentions_leading_keys: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Single,
    ForAllValues,
    ForAnyValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    ArnLike,
    Null,
}

#[derive(Clone, Debug, PartialEq)]
struct Condition {
    set: SetOp,
    op: Op,
    negated: bool,
    if_exists: bool,
    /// Lower-case (condition keys are case-insensitive).
    key: String,
    values: Vec<Pattern>,
}

/// A string with `*`/`?` wildcards and policy variables.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern(Vec<Token>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(String),
    Star,
    Question,
    Variable {
        key: String,
        default: Option<String>,
    },
}

/// The request keys a condition can test. Keys are case-insensitive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextKeys {
    values: BTreeMap<String, Vec<String>>,
    unknown: BTreeSet<String>,
}

impl ContextKeys {
    pub fn new() -> ContextKeys {
        ContextKeys::default()
    }

    /// Sets a single-valued key.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
    }

    /// Sets a multi-valued key (deduplicated, order kept).
    pub fn set_many(&mut self, key: &str, values: impl IntoIterator<Item = String>) {
        let mut out: Vec<String> = Vec::new();
        for v in values {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        self.values.insert(key.to_ascii_lowercase(), out);
    }

    /// Marks a key as present with values that cannot be known.
    pub fn set_unknown(&mut self, key: &str) {
        let key = key.to_ascii_lowercase();
        self.values.remove(&key);
        self.unknown.insert(key);
    }

    /// Returns the values of a key (None when absent or unknown).
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    fn is_unknown(&self, key: &str) -> bool {
        self.unknown.contains(key)
    }
}

/// The outcome of evaluating policies for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No statement allows the request.
    ImplicitDeny,
    /// A Deny statement applies.
    ExplicitDeny,
}

/// What is being asked: an action on a resource, with its context keys.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// e.g. `dynamodb:GetItem`
    pub action: &'a str,
    /// e.g. `arn:aws:dynamodb:us-east-1:123456789012:table/T`
    pub resource: &'a str,
    pub keys: &'a ContextKeys,
}

/// Evaluates `policies` for a request: explicit Deny wins, then Allow,
/// otherwise implicit deny.
pub fn evaluate<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    ctx: &RequestContext<'_>,
) -> Decision {
    let mut allowed = false;
    for policy in policies {
        for st in &policy.statements {
            match (st.effect, st.applies(policy.variables, ctx)) {
                (Effect::Deny, Tri::True | Tri::Unknown) => return Decision::ExplicitDeny,
                (Effect::Allow, Tri::True) => allowed = true,
                _ => {}
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

impl Policy {
    /// Parses a policy document.
    pub fn parse(doc: &Value) -> Result<Policy, PolicyError> {
        let Value::Object(obj) = doc else {
            return Err(err("(document)", "a policy document must be a JSON object"));
        };
        let mut variables = false;
        let mut statements = None;
        for (k, v) in obj {
            match k.as_str() {
                "Version" => match v.as_str() {
                    Some("2012-10-17") => variables = true,
                    Some("2008-10-17") => variables = false,
                    _ => {
                        return Err(err(
                            "Version",
                            format!("must be \"2012-10-17\" or \"2008-10-17\", got {v}"),
                        ))
                    }
                },
                "Id" => {
                    if !v.is_string() {
                        return Err(err("Id", "must be a string"));
                    }
                }
                "Statement" => statements = Some(v),
                other => {
                    return Err(err(other, "unknown policy element"));
                }
            }
        }
        let statements = match statements {
            None => return Err(err("Statement", "missing")),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, s)| Statement::parse(s, &format!("Statement[{i}]"), variables))
                .collect::<Result<Vec<_>, _>>()?,
            Some(one @ Value::Object(_)) => vec![Statement::parse(one, "Statement", variables)?],
            Some(_) => return Err(err("Statement", "must be an object or a list of objects")),
        };
        Ok(Policy {
            variables,
            statements,
        })
    }

    /// Returns true when a statement of the document with this effect
    /// tests `dynamodb:LeadingKeys`.
    pub fn mentions_leading_keys(&self, effect: Effect) -> bool {
        self.statements
            .iter()
            .any(|s| s.effect == effect && s.mentions_leading_keys)
    }
}

impl Statement {
    fn parse(v: &Value, path: &str, variables: bool) -> Result<Statement, PolicyError> {
        let Value::Object(obj) = v else {
            return Err(err(path, "a statement must be an object"));
        };
        let mut effect = None;
        let mut actions = None;
        let mut resources = None;
        let mut conditions = Vec::new();
        for (k, v) in obj {
            let here = format!("{path}.{k}");
            match k.as_str() {
                "Sid" => {
                    if !v.is_string() {
                        return Err(err(&here, "must be a string"));
                    }
                }
                "Effect" => {
                    effect = Some(match v.as_str() {
                        Some("Allow") => Effect::Allow,
                        Some("Deny") => Effect::Deny,
                        _ => return Err(err(&here, format!("must be \"Allow\" or \"Deny\", got {v}"))),
                    })
                }
                "Action" | "NotAction" => {
                    if actions.is_some() {
                        return Err(err(&here, "a statement has either Action or NotAction, once"));
                    }
                    let list = string_list(v, &here)?;
                    for a in &list {
                        if a != "*" && !a.contains(':') {
                            return Err(err(
                                &here,
                                format!("action \"{a}\" must be \"*\" or \"service:Action\""),
                            ));
                        }
                    }
                    let patterns = list.iter().map(|a| Pattern::literal_glob(a)).collect();
                    actions = Some((patterns, k == "NotAction"));
                }
                "Resource" | "NotResource" => {
                    if resources.is_some() {
                        return Err(err(
                            &here,
                            "a statement has either Resource or NotResource, once",
                        ));
                    }
                    let list = string_list(v, &here)?;
                    let patterns = list
                        .iter()
                        .map(|r| Pattern::parse(r, variables, &here))
                        .collect::<Result<Vec<_>, _>>()?;
                    resources = Some((patterns, k == "NotResource"));
                }
                "Condition" => conditions = parse_conditions(v, &here, variables)?,
                "Principal" | "NotPrincipal" => {
                    return Err(err(
                        &here,
                        "identity-based policies cannot name a principal: the policy applies to the users it is attached to",
                    ))
                }
                _ => return Err(err(&here, "unknown statement element")),
            }
        }
        let effect = effect.ok_or_else(|| err(&format!("{path}.Effect"), "missing"))?;
        let (actions, not_action) = actions
            .ok_or_else(|| err(&format!("{path}.Action"), "missing (Action or NotAction)"))?;
        let (resources, not_resource) = resources.ok_or_else(|| {
            err(
                &format!("{path}.Resource"),
                "missing (Resource or NotResource)",
            )
        })?;
        let mentions_leading_keys = conditions.iter().any(|c| c.key == "dynamodb:leadingkeys");
        Ok(Statement {
            effect,
            actions,
            not_action,
            resources,
            not_resource,
            conditions,
            mentions_leading_keys,
        })
    }

    fn applies(&self, variables: bool, ctx: &RequestContext<'_>) -> Tri {
        let vars = Vars {
            enabled: variables,
            keys: ctx.keys,
        };
        let action_hit = self
            .actions
            .iter()
            .any(|p| p.matches(ctx.action, true, &vars) == Some(true));
        if action_hit == self.not_action {
            return Tri::False;
        }
        let resource_hit = self
            .resources
            .iter()
            .any(|p| p.matches(ctx.resource, false, &vars) == Some(true));
        if resource_hit == self.not_resource {
            return Tri::False;
        }
        let mut result = Tri::True;
        for c in &self.conditions {
            match c.evaluate(ctx.keys, &vars) {
                Tri::False => return Tri::False,
                Tri::Unknown => result = Tri::Unknown,
                Tri::True => {}
            }
        }
        result
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

fn parse_conditions(v: &Value, path: &str, variables: bool) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return Err(err(path, "must be an object of condition operators"));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let here = format!("{path}.{op_name}");
        let (set, rest) = if let Some(r) = op_name.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, r)
        } else if let Some(r) = op_name.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, r)
        } else {
            (SetOp::Single, op_name.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let (op, negated) = match base {
            "StringEquals" => (Op::StringEquals, false),
            "StringNotEquals" => (Op::StringEquals, true),
            "StringEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Op::StringEqualsIgnoreCase, true),
            "StringLike" => (Op::StringLike, false),
            "StringNotLike" => (Op::StringLike, true),
            "NumericEquals" => (Op::NumericEquals, false),
            "NumericNotEquals" => (Op::NumericEquals, true),
            "NumericLessThan" => (Op::NumericLessThan, false),
            "NumericLessThanEquals" => (Op::NumericLessThanEquals, false),
            "NumericGreaterThan" => (Op::NumericGreaterThan, false),
            "NumericGreaterThanEquals" => (Op::NumericGreaterThanEquals, false),
            "Bool" => (Op::Bool, false),
            "ArnEquals" | "ArnLike" => (Op::ArnLike, false),
            "ArnNotEquals" | "ArnNotLike" => (Op::ArnLike, true),
            "Null" if set == SetOp::Single && !if_exists => (Op::Null, false),
            _ => return Err(err(&here, "unsupported condition operator")),
        };
        let Value::Object(keys) = keys else {
            return Err(err(&here, "must be an object of condition keys"));
        };
        for (key, values) in keys {
            let kpath = format!("{here}.{key}");
            if key.is_empty() {
                return Err(err(&kpath, "empty condition key"));
            }
            let raw = condition_values(values, &kpath)?;
            if raw.is_empty() {
                return Err(err(&kpath, "needs at least one value"));
            }
            if op == Op::Null || op == Op::Bool {
                for r in &raw {
                    if !r.eq_ignore_ascii_case("true") && !r.eq_ignore_ascii_case("false") {
                        return Err(err(&kpath, format!("expects true or false, got \"{r}\"")));
                    }
                }
            }
            let values = raw
                .iter()
                .map(|r| {
                    if matches!(op, Op::StringLike | Op::ArnLike) {
                        Pattern::parse(r, variables, &kpath)
                    } else {
                        Pattern::parse_no_wildcards(r, variables, &kpath)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Condition {
                set,
                op,
                negated,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

fn string_list(v: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(err(path, "must be a string or a list of strings")),
            })
            .collect(),
        _ => Err(err(path, "must be a string or a non-empty list of strings")),
    }
}

/// Condition values: strings, or booleans and numbers written unquoted.
fn condition_values(v: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    let one = |i: &Value| match i {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(err(path, "values must be strings, numbers or booleans")),
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

impl Condition {
    fn evaluate(&self, keys: &ContextKeys, vars: &Vars<'_>) -> Tri {
        if keys.is_unknown(&self.key) {
            return Tri::Unknown;
        }
        let present = keys.get(&self.key).filter(|v| !v.is_empty());
        if self.op == Op::Null {
            let absent = present.is_none();
            let hit = self
                .values
                .iter()
                .filter_map(|p| p.resolve_text(vars))
                .any(|want| want.eq_ignore_ascii_case("true") == absent);
            return tri(hit);
        }
        let Some(request_values) = present else {
            return tri(match self.set {
                SetOp::ForAllValues => true,
                SetOp::ForAnyValue => self.if_exists,
                SetOp::Single => self.if_exists || self.negated,
            });
        };
        let one = |v: &str| {
            let hit = self.values.iter().any(|p| self.matches_one(v, p, vars));
            hit != self.negated
        };
        tri(match self.set {
            SetOp::ForAllValues => request_values.iter().all(|v| one(v)),
            SetOp::ForAnyValue => request_values.iter().any(|v| one(v)),
            SetOp::Single if self.negated => request_values.iter().all(|v| one(v)),
            SetOp::Single => request_values.iter().any(|v| one(v)),
        })
    }

    /// Does request value `v` match policy value `p` under the (positive)
    /// operator? Unresolvable variables never match.
    fn matches_one(&self, v: &str, p: &Pattern, vars: &Vars<'_>) -> bool {
        match self.op {
            Op::StringLike | Op::ArnLike => p.matches(v, false, vars) == Some(true),
            Op::StringEquals => p.resolve_text(vars).is_some_and(|t| t == v),
            Op::StringEqualsIgnoreCase => p
                .resolve_text(vars)
                .is_some_and(|t| t.to_lowercase() == v.to_lowercase()),
            Op::Bool => p
                .resolve_text(vars)
                .is_some_and(|t| t.eq_ignore_ascii_case(v)),
            Op::NumericEquals
            | Op::NumericLessThan
            | Op::NumericLessThanEquals
            | Op::NumericGreaterThan
            | Op::NumericGreaterThanEquals => {
                let (Some(want), Ok(got)) = (
                    p.resolve_text(vars)
                        .and_then(|t| t.trim().parse::<f64>().ok()),
                    v.trim().parse::<f64>(),
                ) else {
                    return false;
                };
                match self.op {
                    Op::NumericEquals => got == want,
                    Op::NumericLessThan => got < want,
                    Op::NumericLessThanEquals => got <= want,
                    Op::NumericGreaterThan => got > want,
                    _ => got >= want,
                }
            }
            Op::Null => false,
        }
    }
}

fn tri(b: bool) -> Tri {
    if b {
        Tri::True
    } else {
        Tri::False
    }
}

/// Resolves policy variables.
struct Vars<'a> {
    enabled: bool,
    keys: &'a ContextKeys,
}

impl Vars<'_> {
    fn lookup(&self, key: &str) -> Option<String> {
        match self.keys.get(key) {
            Some([one]) => Some(one.clone()),
            _ => None,
        }
    }
}

impl Pattern {
    /// A pattern with `*` and `?` wildcards and no variables (actions).
    fn literal_glob(s: &str) -> Pattern {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        for c in s.chars() {
            match c {
                '*' | '?' => {
                    if !lit.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut lit)));
                    }
                    tokens.push(if c == '*' {
                        Token::Star
                    } else {
                        Token::Question
                    });
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Literal(lit));
        }
        Pattern(tokens)
    }

    /// Parses wildcards and (when `variables`) `${...}` variables.
    fn parse(s: &str, variables: bool, path: &str) -> Result<Pattern, PolicyError> {
        Pattern::parse_inner(s, variables, true, path)
    }

    /// Parses variables only; `*` and `?` are literal.
    fn parse_no_wildcards(s: &str, variables: bool, path: &str) -> Result<Pattern, PolicyError> {
        Pattern::parse_inner(s, variables, false, path)
    }

    fn parse_inner(
        s: &str,
        variables: bool,
        wildcards: bool,
        path: &str,
    ) -> Result<Pattern, PolicyError> {
        let mut tokens = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let Some(end) = rest.find('}') else {
                    return Err(err(
                        path,
                        format!("unterminated policy variable in \"{s}\""),
                    ));
                };
                let inner = &rest[2..end];
                rest = &rest[end + 1..];
                match inner {
                    "*" | "?" | "$" => lit.push_str(inner),
                    _ => {
                        let (key, default) = match inner.split_once(',') {
                            Some((k, d)) => {
                                let d = d.trim();
                                let d = d
                                    .strip_prefix('\'')
                                    .and_then(|d| d.strip_suffix('\''))
                                    .ok_or_else(|| {
                                        err(path, format!("a variable default must be quoted with ' in \"{s}\""))
                                    })?;
                                (k.trim(), Some(d.to_string()))
                            }
                            None => (inner.trim(), None),
                        };
                        if key.is_empty() {
                            return Err(err(path, format!("empty policy variable in \"{s}\"")));
                        }
                        if !lit.is_empty() {
                            tokens.push(Token::Literal(std::mem::take(&mut lit)));
                        }
                        tokens.push(Token::Variable {
                            key: key.to_string(),
                            default,
                        });
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            if wildcards && (c == '*' || c == '?') {
                if !lit.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut lit)));
                }
                tokens.push(if c == '*' {
                    Token::Star
                } else {
                    Token::Question
                });
            } else {
                lit.push(c);
            }
        }
        if !lit.is_empty() {
            tokens.push(Token::Literal(lit));
        }
        Ok(Pattern(tokens))
    }

    /// Substitutes variables into a sequence of literal chars and wildcards.
    /// None when a variable cannot be resolved.
    fn expand(&self, vars: &Vars<'_>) -> Option<Vec<Elem>> {
        let mut out = Vec::new();
        for t in &self.0 {
            match t {
                Token::Literal(s) => out.extend(s.chars().map(Elem::Char)),
                Token::Star => out.push(Elem::Star),
                Token::Question => out.push(Elem::Question),
                Token::Variable { key, default } => {
                    let value = if vars.enabled {
                        vars.lookup(key).or_else(|| default.clone())?
                    } else {
                        // 2008-10-17 documents: the text is literal.
                        match default {
                            Some(d) => format!("${{{key}, '{d}'}}"),
                            None => format!("${{{key}}}"),
                        }
                    };
                    out.extend(value.chars().map(Elem::Char));
                }
            }
        }
        Some(out)
    }

    /// The pattern's text with variables substituted (for operators without
    /// wildcards, where `*` and `?` were parsed as literals).
    fn resolve_text(&self, vars: &Vars<'_>) -> Option<String> {
        let elems = self.expand(vars)?;
        Some(
            elems
                .into_iter()
                .map(|e| match e {
                    Elem::Char(c) => c,
                    Elem::Star => '*',
                    Elem::Question => '?',
                })
                .collect(),
        )
    }

    /// Glob match; None when a variable cannot be resolved.
    fn matches(&self, text: &str, ignore_case: bool, vars: &Vars<'_>) -> Option<bool> {
        let pattern = self.expand(vars)?;
        let text: Vec<char> = text.chars().collect();
        Some(glob(&pattern, &text, ignore_case))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    Char(char),
    Star,
    Question,
}

/// Matches `*` (any run) and `?` (one char), in O(len(p) * len(t)) worst case.
fn glob(p: &[Elem], t: &[char], ignore_case: bool) -> bool {
    let eq = |a: char, b: char| {
        if ignore_case {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(Elem::Star) => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some(Elem::Question) => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some(Elem::Char(c)) if eq(*c, t[ti]) => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|e| *e == Elem::Star)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
