//! The statement grammar DynamoDB accepts, parsed into an unresolved AST:
//! parameters are still `?` placeholders and paths are still syntax, so the
//! planner can check them against the table and bind the request's values.
//!
//! ```text
//! statement := select | insert | update | delete | EXISTS '(' select ')'
//! select    := SELECT ('*' | path {',' path}) FROM name ['.' name]
//!              [WHERE expr] [ORDER BY name [ASC|DESC] {',' ...}]
//! insert    := INSERT INTO name VALUE expr
//! update    := UPDATE name {SET assign {',' assign} | REMOVE path}
//!              [WHERE expr] [RETURNING (ALL|MODIFIED) (OLD|NEW) '*']
//! delete    := DELETE FROM name [WHERE expr] [RETURNING ...]
//! expr      := OR / AND / NOT / comparison, BETWEEN, IN, IS [NOT] type,
//!              '+'/'-', literals, '?', paths, function calls,
//!              [lists], {structs}, <<bags>>
//! ```
//!
//! Nesting (parentheses, NOT, function calls, collection literals) is
//! bounded by [`MAX_NESTING`], so no statement can overflow the stack.

use super::lexer::{tokenize, Pos, Tok, Token};
use super::{malformed, with_pos};
use crate::error::ApiError;

/// The deepest nesting of parentheses, NOT, calls and collection literals.
pub const MAX_NESTING: usize = 64;

/// Words that cannot be bare identifiers.
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "INSERT",
    "INTO",
    "VALUE",
    "VALUES",
    "UPDATE",
    "SET",
    "REMOVE",
    "DELETE",
    "RETURNING",
    "BETWEEN",
    "IN",
    "IS",
    "MISSING",
    "NULL",
    "TRUE",
    "FALSE",
    "ORDER",
    "BY",
    "EXISTS",
    "LIMIT",
    "GROUP",
    "HAVING",
    "JOIN",
    "AS",
    "AT",
    "ON",
    "LIKE",
    "OFFSET",
    "UNION",
];

/// A parsed statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    Select(Select),
    Insert {
        table: String,
        item: Expr,
    },
    Update {
        table: String,
        actions: Vec<UpdateAction>,
        filter: Option<Expr>,
        returning: Option<Returning>,
    },
    Delete {
        table: String,
        filter: Option<Expr>,
        returning: Option<Returning>,
    },
    /// `EXISTS(SELECT ...)`: a condition check inside ExecuteTransaction.
    Exists(Select),
}

impl Statement {
    /// Returns the table the statement names.
    pub fn table(&self) -> &str {
        match self {
            Statement::Select(s) | Statement::Exists(s) => &s.table,
            Statement::Insert { table, .. }
            | Statement::Update { table, .. }
            | Statement::Delete { table, .. } => table,
        }
    }

    /// Returns true for SELECT (a read).
    pub fn is_read(&self) -> bool {
        matches!(self, Statement::Select(_))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    /// `None` for `*`.
    pub projection: Option<Vec<PathExpr>>,
    pub table: String,
    pub index: Option<String>,
    pub filter: Option<Expr>,
    /// ORDER BY attributes with `true` for DESC.
    pub order_by: Vec<(String, bool)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UpdateAction {
    Set(PathExpr, Expr),
    Remove(PathExpr),
}

/// RETURNING (ALL|MODIFIED) (OLD|NEW) *.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Returning {
    pub all: bool,
    pub new: bool,
}

impl Returning {
    /// Renders the clause as DynamoDB prints it in messages.
    pub fn text(&self) -> String {
        format!(
            "{} {} *",
            if self.all { "ALL" } else { "MODIFIED" },
            if self.new { "NEW" } else { "OLD" }
        )
    }
}

/// One step of a path after its first name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(String),
    Wildcard,
}

/// A path as written: `a.b[0]."c d"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathExpr {
    pub root: String,
    pub steps: Vec<Step>,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    Str(String),
    Num(String),
    Bool(bool),
    Null,
    Missing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Path(PathExpr),
    Lit(Lit, Pos),
    /// The n-th `?` of the statement (0-based).
    Param(usize, Pos),
    List(Vec<Expr>, Pos),
    Struct(Vec<(Expr, Expr)>, Pos),
    Bag(Vec<Expr>, Pos),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Between(Box<Expr>, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    /// `e IS [NOT] TYPE`, the type name upper-cased.
    Is(Box<Expr>, bool, String),
    Call(String, Vec<Expr>, Pos),
}

impl Expr {
    /// Returns the position of the expression's first token, when known.
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Path(p) => p.pos,
            Expr::Lit(_, p)
            | Expr::Param(_, p)
            | Expr::List(_, p)
            | Expr::Struct(_, p)
            | Expr::Bag(_, p)
            | Expr::Call(_, _, p) => *p,
            Expr::Cmp(_, a, _)
            | Expr::Add(a, _)
            | Expr::Sub(a, _)
            | Expr::And(a, _)
            | Expr::Or(a, _)
            | Expr::Between(a, _, _)
            | Expr::In(a, _)
            | Expr::Is(a, _, _) => a.pos(),
            Expr::Not(a) => a.pos(),
        }
    }
}

/// Parses one statement; returns it and the number of `?` parameters.
pub fn parse(input: &str) -> Result<(Statement, usize), ApiError> {
    let tokens = tokenize(input)?;
    let mut p = Parser {
        tokens,
        at: 0,
        params: 0,
        depth: 0,
    };
    let stmt = p.statement()?;
    p.eat_punct(";");
    if p.peek().is_some() {
        return Err(p.unexpected());
    }
    Ok((stmt, p.params))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    params: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.tokens.get(self.at + n).map(|t| &t.tok)
    }

    fn pos(&self) -> Pos {
        self.tokens
            .get(self.at)
            .or_else(|| self.tokens.last())
            .map(|t| t.pos)
            .unwrap_or_default()
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.at).map(|t| t.tok.clone());
        if t.is_some() {
            self.at += 1;
        }
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ApiError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), ApiError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// The syntax error for the current token.
    fn unexpected(&self) -> ApiError {
        match self.peek() {
            None => malformed("Unexpected end of statement"),
            Some(Tok::Word(w)) if is_reserved(w) => malformed("Unexpected keyword"),
            Some(Tok::Word(_)) | Some(Tok::Quoted(_)) => malformed("Unexpected term"),
            Some(_) => malformed("Unexpected token"),
        }
    }

    fn enter(&mut self) -> Result<(), ApiError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(malformed("Expression is nested too deeply"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn statement(&mut self) -> Result<Statement, ApiError> {
        if self.eat_kw("SELECT") {
            return Ok(Statement::Select(self.select_rest()?));
        }
        if self.eat_kw("INSERT") {
            return self.insert_rest();
        }
        if self.eat_kw("UPDATE") {
            return self.update_rest();
        }
        if self.eat_kw("DELETE") {
            return self.delete_rest();
        }
        if self.eat_kw("EXISTS") {
            self.expect_punct("(")?;
            self.expect_kw("SELECT")?;
            let select = self.select_rest()?;
            self.expect_punct(")")?;
            return Ok(Statement::Exists(select));
        }
        Err(malformed("Expected data manipulation"))
    }

    /// A table, index or attribute name: a quoted or bare identifier.
    fn name(&mut self) -> Result<String, ApiError> {
        match self.peek() {
            Some(Tok::Quoted(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            Some(Tok::Word(w)) if !is_reserved(w) => {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn select_rest(&mut self) -> Result<Select, ApiError> {
        let projection = if self.eat_punct("*") {
            if self.is_punct(",") {
                return Err(self.unexpected());
            }
            None
        } else {
            let mut paths = vec![self.projected_path()?];
            while self.eat_punct(",") {
                paths.push(self.projected_path()?);
            }
            Some(paths)
        };
        self.expect_kw("FROM")?;
        let table = self.name()?;
        let index = if self.eat_punct(".") {
            Some(self.name()?)
        } else {
            None
        };
        if self.is_punct(".") || self.is_punct("[") {
            return Err(ApiError::validation(
                "A path may contain at most 2 components in the FROM clause",
            ));
        }
        let filter = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let name = self.name()?;
                let desc = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                order_by.push((name, desc));
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        if self.is_kw("LIMIT") {
            let pos = self
                .tokens
                .get(self.at + 1)
                .map(|t| t.pos)
                .unwrap_or(self.pos());
            return Err(with_pos("Unsupported clause: LIMIT", pos));
        }
        Ok(Select {
            projection,
            table,
            index,
            filter,
            order_by,
        })
    }

    /// A path in a SELECT list; anything else there is "Unexpected path
    /// component".
    fn projected_path(&mut self) -> Result<PathExpr, ApiError> {
        let pos = self.pos();
        match self.peek() {
            Some(Tok::Quoted(_)) => self.path(),
            Some(Tok::Word(w)) if !is_reserved(w) => {
                if self.peek_at(1) == Some(&Tok::Punct("(")) {
                    return Err(with_pos("Unexpected path component", pos));
                }
                self.path()
            }
            _ => Err(self.unexpected()),
        }
    }

    fn path(&mut self) -> Result<PathExpr, ApiError> {
        let pos = self.pos();
        let root = self.name()?;
        let mut steps = Vec::new();
        loop {
            if self.eat_punct(".") {
                if self.eat_punct("*") {
                    steps.push(Step::Wildcard);
                } else {
                    steps.push(Step::Field(self.name()?));
                }
            } else if self.eat_punct("[") {
                match self.next() {
                    Some(Tok::Num(n)) => steps.push(Step::Index(n)),
                    Some(Tok::Str(s)) => steps.push(Step::Field(s)),
                    Some(Tok::Punct("*")) => steps.push(Step::Wildcard),
                    _ => {
                        self.at = self.at.saturating_sub(1);
                        return Err(self.unexpected());
                    }
                }
                self.expect_punct("]")?;
            } else {
                break;
            }
        }
        Ok(PathExpr { root, steps, pos })
    }

    fn insert_rest(&mut self) -> Result<Statement, ApiError> {
        self.expect_kw("INTO")?;
        let table = self.name()?;
        if self.is_kw("VALUES") || self.is_punct("<<") {
            return Err(ApiError::validation(
                "Unsupported operation: Inserting multiple items in a single statement is not supported, use \"INSERT INTO tableName VALUE item\" instead",
            ));
        }
        self.expect_kw("VALUE")?;
        let item = self.expr()?;
        if self.is_kw("RETURNING") {
            return Err(ApiError::validation("RETURNING is not supported in INSERT"));
        }
        if self.is_kw("AT") {
            return Err(ApiError::validation(
                "AT is not supported in insert statements.",
            ));
        }
        Ok(Statement::Insert { table, item })
    }

    fn update_rest(&mut self) -> Result<Statement, ApiError> {
        let table = self.name()?;
        let mut actions = Vec::new();
        loop {
            if self.eat_kw("SET") {
                loop {
                    let target = self.path()?;
                    self.expect_punct("=")?;
                    let value = self.expr()?;
                    actions.push(UpdateAction::Set(target, value));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
            } else if self.eat_kw("REMOVE") {
                actions.push(UpdateAction::Remove(self.path()?));
            } else {
                break;
            }
        }
        if actions.is_empty() {
            return Err(self.unexpected());
        }
        let filter = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let returning = self.returning()?;
        Ok(Statement::Update {
            table,
            actions,
            filter,
            returning,
        })
    }

    fn delete_rest(&mut self) -> Result<Statement, ApiError> {
        self.expect_kw("FROM")?;
        let table = self.name()?;
        let filter = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let returning = self.returning()?;
        Ok(Statement::Delete {
            table,
            filter,
            returning,
        })
    }

    fn returning(&mut self) -> Result<Option<Returning>, ApiError> {
        if !self.eat_kw("RETURNING") {
            return Ok(None);
        }
        let all = if self.eat_kw("ALL") {
            true
        } else if self.eat_kw("MODIFIED") {
            false
        } else {
            return Err(self.unexpected());
        };
        let new = if self.eat_kw("NEW") {
            true
        } else if self.eat_kw("OLD") {
            false
        } else {
            return Err(self.unexpected());
        };
        if !self.eat_punct("*") {
            return Err(ApiError::validation(
                "Expected '*' after ( MODIFIED | ALL ) ( NEW | OLD ) in RETURNING clause",
            ));
        }
        if self.is_punct(",") {
            return Err(ApiError::validation(
                "Invalid syntax with multiple returning elements in RETURNING clause",
            ));
        }
        Ok(Some(Returning { all, new }))
    }

    fn expr(&mut self) -> Result<Expr, ApiError> {
        let mut left = self.and()?;
        while self.eat_kw("OR") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ApiError> {
        let mut left = self.not()?;
        while self.eat_kw("AND") {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ApiError> {
        if self.eat_kw("NOT") {
            self.enter()?;
            let inner = self.not()?;
            self.leave();
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, ApiError> {
        let left = self.additive()?;
        let op = match self.peek() {
            Some(Tok::Punct("=")) => Some(CmpOp::Eq),
            Some(Tok::Punct("<>")) | Some(Tok::Punct("!=")) => Some(CmpOp::Ne),
            Some(Tok::Punct("<")) => Some(CmpOp::Lt),
            Some(Tok::Punct("<=")) => Some(CmpOp::Le),
            Some(Tok::Punct(">")) => Some(CmpOp::Gt),
            Some(Tok::Punct(">=")) => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.at += 1;
            let right = self.additive()?;
            return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
        }
        if self.eat_kw("BETWEEN") {
            let lo = self.additive()?;
            self.expect_kw("AND")?;
            let hi = self.additive()?;
            return Ok(Expr::Between(Box::new(left), Box::new(lo), Box::new(hi)));
        }
        let negated_in = self.is_kw("NOT")
            && matches!(self.peek_at(1), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IN"));
        if negated_in {
            self.at += 1;
        }
        if self.eat_kw("IN") {
            let right = self.in_list()?;
            let e = Expr::In(Box::new(left), Box::new(right));
            return Ok(if negated_in {
                Expr::Not(Box::new(e))
            } else {
                e
            });
        }
        if self.eat_kw("IS") {
            let not = self.eat_kw("NOT");
            let ty = match self.next() {
                Some(Tok::Word(w)) => w.to_ascii_uppercase(),
                _ => {
                    self.at = self.at.saturating_sub(1);
                    return Err(self.unexpected());
                }
            };
            return Ok(Expr::Is(Box::new(left), not, ty));
        }
        Ok(left)
    }

    /// The right side of IN: `[a, b]`, `(a, b)` or a single operand.
    fn in_list(&mut self) -> Result<Expr, ApiError> {
        if self.is_punct("(") {
            let pos = self.pos();
            self.at += 1;
            self.enter()?;
            let items = self.items(")")?;
            self.leave();
            return Ok(Expr::List(items, pos));
        }
        self.additive()
    }

    fn additive(&mut self) -> Result<Expr, ApiError> {
        let mut left = self.primary()?;
        loop {
            if self.eat_punct("+") {
                let right = self.primary()?;
                left = Expr::Add(Box::new(left), Box::new(right));
            } else if self.is_punct("-") {
                self.at += 1;
                let right = self.primary()?;
                left = Expr::Sub(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    /// Comma-separated expressions up to the closing punctuation `close`.
    fn items(&mut self, close: &str) -> Result<Vec<Expr>, ApiError> {
        let mut items = Vec::new();
        if self.eat_punct(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr()?);
            if self.eat_punct(close) {
                return Ok(items);
            }
            self.expect_punct(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr, ApiError> {
        let pos = self.pos();
        let Some(tok) = self.peek().cloned() else {
            return Err(malformed("Unexpected end of statement"));
        };
        match tok {
            Tok::Str(s) => {
                self.at += 1;
                Ok(Expr::Lit(Lit::Str(s), pos))
            }
            Tok::Num(n) => {
                self.at += 1;
                Ok(Expr::Lit(Lit::Num(n), pos))
            }
            Tok::Param => {
                self.at += 1;
                self.params += 1;
                Ok(Expr::Param(self.params - 1, pos))
            }
            Tok::Ion => Err(with_pos(
                "Ion Literals are not supported: SYMBOL under key root",
                pos,
            )),
            Tok::Punct("-") if matches!(self.peek_at(1), Some(Tok::Num(_))) => {
                self.at += 1;
                match self.next() {
                    Some(Tok::Num(n)) => Ok(Expr::Lit(Lit::Num(format!("-{n}")), pos)),
                    _ => Err(self.unexpected()),
                }
            }
            Tok::Punct("(") => {
                self.at += 1;
                self.enter()?;
                let inner = self.expr()?;
                self.leave();
                self.expect_punct(")")?;
                Ok(inner)
            }
            Tok::Punct("[") => {
                self.at += 1;
                self.enter()?;
                let items = self.items("]")?;
                self.leave();
                Ok(Expr::List(items, pos))
            }
            Tok::Punct("<<") => {
                self.at += 1;
                self.enter()?;
                let items = self.items(">>")?;
                self.leave();
                Ok(Expr::Bag(items, pos))
            }
            Tok::Punct("{") => {
                self.at += 1;
                self.enter()?;
                let mut fields = Vec::new();
                if !self.eat_punct("}") {
                    loop {
                        let key = self.expr()?;
                        self.expect_punct(":")?;
                        let value = self.expr()?;
                        fields.push((key, value));
                        if self.eat_punct("}") {
                            break;
                        }
                        self.expect_punct(",")?;
                    }
                }
                self.leave();
                Ok(Expr::Struct(fields, pos))
            }
            Tok::Word(w) => {
                let upper = w.to_ascii_uppercase();
                let lit = match upper.as_str() {
                    "TRUE" => Some(Lit::Bool(true)),
                    "FALSE" => Some(Lit::Bool(false)),
                    "NULL" => Some(Lit::Null),
                    "MISSING" => Some(Lit::Missing),
                    _ => None,
                };
                if let Some(lit) = lit {
                    self.at += 1;
                    return Ok(Expr::Lit(lit, pos));
                }
                if self.peek_at(1) == Some(&Tok::Punct("(")) && !is_reserved(&w) {
                    self.at += 2;
                    self.enter()?;
                    let args = self.items(")")?;
                    self.leave();
                    return Ok(Expr::Call(w, args, pos));
                }
                Ok(Expr::Path(self.path()?))
            }
            Tok::Quoted(_) => Ok(Expr::Path(self.path()?)),
            _ => Err(self.unexpected()),
        }
    }
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Statement {
        parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.message)).0
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().message
    }

    fn path(root: &str) -> PathExpr {
        PathExpr {
            root: root.into(),
            steps: vec![],
            pos: Pos::default(),
        }
    }

    #[test]
    fn parses_select_forms() {
        let Statement::Select(s) =
            ok(r#"select a, "b".c[2] FROM "T"."I" WHERE pk = ? AND x > 1 ORDER BY sk DESC"#)
        else {
            panic!()
        };
        assert_eq!(s.table, "T");
        assert_eq!(s.index.as_deref(), Some("I"));
        let proj = s.projection.unwrap();
        assert_eq!(proj[0].root, "a");
        assert_eq!(
            proj[1].steps,
            vec![Step::Field("c".into()), Step::Index("2".into())]
        );
        assert_eq!(s.order_by, vec![("sk".to_string(), true)]);
        assert!(matches!(s.filter, Some(Expr::And(..))));
        let (Statement::Select(s), n) =
            parse("SELECT * FROM t WHERE a IN [?, ?] OR NOT b BETWEEN 1 AND 2;").unwrap()
        else {
            panic!()
        };
        assert_eq!(n, 2);
        assert!(s.projection.is_none());
        assert!(matches!(s.filter, Some(Expr::Or(..))));
    }

    #[test]
    fn parses_writes() {
        let Statement::Insert { table, item } =
            ok("INSERT INTO \"T\" VALUE {'pk': 'a', 'n': -5, 'l': [1, true, NULL], 's': <<'x'>>}")
        else {
            panic!()
        };
        assert_eq!(table, "T");
        let Expr::Struct(fields, _) = item else {
            panic!()
        };
        assert_eq!(fields.len(), 4);
        assert!(matches!(&fields[1].1, Expr::Lit(Lit::Num(n), _) if n == "-5"));
        let Statement::Update {
            actions, returning, ..
        } = ok("UPDATE T SET a = a + 1, b = list_append(b, [1]) REMOVE c SET d = ? WHERE pk = 'x' RETURNING MODIFIED NEW *")
        else {
            panic!()
        };
        assert_eq!(actions.len(), 4);
        assert_eq!(
            actions[2],
            UpdateAction::Remove(PathExpr {
                pos: actions_pos(&actions[2]),
                ..path("c")
            })
        );
        assert_eq!(
            returning,
            Some(Returning {
                all: false,
                new: true
            })
        );
        assert!(matches!(
            ok("DELETE FROM T WHERE pk = 'a' RETURNING ALL OLD *"),
            Statement::Delete { .. }
        ));
        assert!(matches!(
            ok("EXISTS(SELECT * FROM T WHERE pk = 'a')"),
            Statement::Exists(_)
        ));
    }

    fn actions_pos(a: &UpdateAction) -> Pos {
        match a {
            UpdateAction::Remove(p) | UpdateAction::Set(p, _) => p.pos,
        }
    }

    #[test]
    fn syntax_errors_use_dynamodb_wording() {
        let prefix = "Statement wasn't well formed, can't be processed: ";
        assert_eq!(
            err("SELECTT * FROMM \"T\""),
            format!("{prefix}Expected data manipulation")
        );
        assert_eq!(
            err("SELECT * FROM"),
            format!("{prefix}Unexpected end of statement")
        );
        assert_eq!(
            err("SELECT *, a FROM t"),
            format!("{prefix}Unexpected token")
        );
        assert_eq!(
            err("UPDATE t REMOVE a, b WHERE pk = 1"),
            format!("{prefix}Unexpected token")
        );
        assert_eq!(
            err("SELECT * FROM t WHERE"),
            format!("{prefix}Unexpected end of statement")
        );
        assert_eq!(
            err("SELECT * FROM t t2"),
            format!("{prefix}Unexpected term")
        );
        assert_eq!(
            err("SELECT count(*) FROM t"),
            "Unexpected path component at 1:8:5"
        );
        assert_eq!(
            err("SELECT * FROM t WHERE pk = 'a' LIMIT 2"),
            "Unsupported clause: LIMIT at 1:38:1"
        );
        assert_eq!(
            err("UPDATE t SET a = 1 WHERE pk = 'a' RETURNING ALL NEW a"),
            "Expected '*' after ( MODIFIED | ALL ) ( NEW | OLD ) in RETURNING clause"
        );
        assert_eq!(
            err("INSERT INTO t VALUE {'pk': 'a'} RETURNING ALL OLD *"),
            "RETURNING is not supported in INSERT"
        );
        assert!(err("SELECT * FROM a.b.c").contains("at most 2 components"));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!(
            "SELECT * FROM t WHERE {}a = 1{}",
            "(".repeat(200),
            ")".repeat(200)
        );
        assert!(err(&deep).contains("nested too deeply"));
        let nots = format!("SELECT * FROM t WHERE {} a = 1", "NOT ".repeat(500));
        assert!(err(&nots).contains("nested too deeply"));
        let lists = format!("INSERT INTO t VALUE {}", "[".repeat(300));
        assert!(parse(&lists).is_err());
    }
}
