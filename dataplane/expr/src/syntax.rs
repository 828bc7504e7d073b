//! Unresolved syntax trees: what the parser produces before `#name` and
//! `:value` placeholders are substituted and semantic rules are checked.
//!
//! Keeping this stage separate lets every syntax error win over every
//! semantic error, as in DynamoDB, whatever their positions in the text.

use crate::ast::CompareOp;

/// One step of a path as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawElem {
    /// A bare attribute name (checked against the reserved words).
    Bare(String),
    /// A `#name` placeholder.
    Name(String),
    /// A `[n]` list index.
    Index(usize),
}

/// A document path as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawPath(pub Vec<RawElem>);

/// A function call as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawCall {
    pub name: String,
    pub args: Vec<RawOperand>,
}

/// An operand as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawOperand {
    Path(RawPath),
    /// A `:value` placeholder.
    Value(String),
    Call(RawCall),
    /// `a + b` (UpdateExpression SET only).
    Plus(Box<RawOperand>, Box<RawOperand>),
    /// `a - b` (UpdateExpression SET only).
    Minus(Box<RawOperand>, Box<RawOperand>),
}

/// A condition as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawCond {
    Compare(RawOperand, CompareOp, RawOperand),
    Between(RawOperand, RawOperand, RawOperand),
    In(RawOperand, Vec<RawOperand>),
    And(Box<RawCond>, Box<RawCond>),
    Or(Box<RawCond>, Box<RawCond>),
    Not(Box<RawCond>),
    /// A function call used as a condition (`attribute_exists(a)`).
    Call(RawCall),
    /// `( condition )`, kept to detect redundant parentheses.
    Paren(Box<RawCond>),
}

/// The four UpdateExpression clauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clause {
    Set,
    Remove,
    Add,
    Delete,
}

impl Clause {
    pub fn keyword(self) -> &'static str {
        match self {
            Clause::Set => "SET",
            Clause::Remove => "REMOVE",
            Clause::Add => "ADD",
            Clause::Delete => "DELETE",
        }
    }

    pub fn from_word(word: &str) -> Option<Clause> {
        match word.to_ascii_uppercase().as_str() {
            "SET" => Some(Clause::Set),
            "REMOVE" => Some(Clause::Remove),
            "ADD" => Some(Clause::Add),
            "DELETE" => Some(Clause::Delete),
            _ => None,
        }
    }
}

/// One UpdateExpression action as written, in text order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawAction {
    Set(RawPath, RawOperand),
    Remove(RawPath),
    /// `ADD path :value`
    Add(RawPath, String),
    /// `DELETE path :value`
    Delete(RawPath, String),
}

/// An UpdateExpression as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawUpdate {
    pub actions: Vec<RawAction>,
    /// The first clause keyword that appeared twice.
    pub repeated_clause: Option<Clause>,
}
