//! Recursive-descent parser from tokens to the unresolved trees of
//! [`crate::syntax`].
//!
//! Precedence, lowest first: OR, AND, NOT, then the comparison, BETWEEN and
//! IN forms. AND/OR chains are parsed with loops; only parentheses, NOT and
//! nested function calls recurse, and they are bounded by [`crate::MAX_NESTING`], so
//! no input can overflow the stack.

use crate::ast::CompareOp;
use crate::lexer::{tokenize, Tok, Token};
use crate::syntax::{Clause, RawAction, RawCall, RawCond, RawElem, RawOperand, RawPath, RawUpdate};
use crate::{ExprError, ExpressionKind, MAX_NESTING};

pub struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    kind: ExpressionKind,
    depth: usize,
}

type PResult<T> = Result<T, ExprError>;

fn is_keyword(word: &str, kw: &str) -> bool {
    word.eq_ignore_ascii_case(kw)
}

/// Words that end an operand in a condition and can never be a bare path.
fn is_condition_keyword(word: &str) -> bool {
    ["AND", "OR", "NOT", "BETWEEN", "IN"]
        .iter()
        .any(|k| is_keyword(word, k))
}

impl<'s> Parser<'s> {
    pub fn new(src: &'s str, kind: ExpressionKind) -> Parser<'s> {
        Parser {
            src,
            toks: tokenize(src),
            pos: 0,
            kind,
            depth: 0,
        }
    }

    fn peek(&self) -> &Tok {
        self.tok_at(self.pos)
    }

    fn tok_at(&self, i: usize) -> &Tok {
        self.toks.get(i).map(|t| &t.tok).unwrap_or(&Tok::Eof)
    }

    fn advance(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if is_keyword(w, kw))
    }

    /// DynamoDB's syntax error for the current token: the token itself and,
    /// as context, the text from the previous token through the next one.
    fn syntax_error(&self) -> ExprError {
        let i = self.pos.min(self.toks.len().saturating_sub(1));
        let Some(cur) = self.toks.get(i) else {
            return self
                .kind
                .error("Syntax error; token: \"<EOF>\", near: \"\"");
        };
        let token = if cur.tok == Tok::Eof {
            "<EOF>".to_string()
        } else {
            self.src.get(cur.start..cur.end).unwrap_or("").to_string()
        };
        let start = if i > 0 {
            self.toks.get(i - 1).map_or(cur.start, |t| t.start)
        } else {
            cur.start
        };
        let end = match self.toks.get(i + 1) {
            Some(next) if next.tok != Tok::Eof => next.end,
            _ if cur.tok != Tok::Eof => cur.end,
            _ => self.toks.get(i.wrapping_sub(1)).map_or(cur.end, |t| t.end),
        };
        let near = self.src.get(start..end).unwrap_or("");
        self.kind.error(&format!(
            "Syntax error; token: \"{token}\", near: \"{near}\""
        ))
    }

    fn expect(&mut self, tok: Tok) -> PResult<()> {
        if *self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.syntax_error())
        }
    }

    fn expect_eof(&self) -> PResult<()> {
        if *self.peek() == Tok::Eof {
            Ok(())
        } else {
            Err(self.syntax_error())
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.kind.error(&format!(
                "The expression is nested too deeply; maximum nesting: {MAX_NESTING}"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---- paths and operands ----

    fn parse_path(&mut self) -> PResult<RawPath> {
        let first = match self.peek().clone() {
            Tok::Ident(w) => RawElem::Bare(w),
            Tok::Name(n) => RawElem::Name(n),
            _ => return Err(self.syntax_error()),
        };
        self.advance();
        let mut elems = vec![first];
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.advance();
                    let elem = match self.peek().clone() {
                        Tok::Ident(w) => RawElem::Bare(w),
                        Tok::Name(n) => RawElem::Name(n),
                        _ => return Err(self.syntax_error()),
                    };
                    self.advance();
                    elems.push(elem);
                }
                Tok::LBracket => {
                    self.advance();
                    let index = match self.peek() {
                        Tok::Int(digits) => digits.parse::<usize>().ok(),
                        _ => None,
                    };
                    let Some(index) = index else {
                        return Err(self.syntax_error());
                    };
                    self.advance();
                    self.expect(Tok::RBracket)?;
                    elems.push(RawElem::Index(index));
                }
                _ => return Ok(RawPath(elems)),
            }
        }
    }

    /// A path, a `:value`, or a function call.
    fn parse_operand(&mut self) -> PResult<RawOperand> {
        match self.peek().clone() {
            Tok::Value(v) => {
                self.advance();
                Ok(RawOperand::Value(v))
            }
            Tok::Ident(w) if *self.tok_at(self.pos + 1) == Tok::LParen => {
                self.advance();
                self.advance();
                self.enter()?;
                let mut args = Vec::new();
                if *self.peek() != Tok::RParen {
                    loop {
                        args.push(self.parse_operand()?);
                        if *self.peek() == Tok::Comma {
                            self.advance();
                        } else {
                            break;
                        }
                    }
                }
                self.expect(Tok::RParen)?;
                self.leave();
                Ok(RawOperand::Call(RawCall { name: w, args }))
            }
            Tok::Ident(w)
                if matches!(
                    self.kind,
                    ExpressionKind::Update | ExpressionKind::Projection
                ) || !is_condition_keyword(&w) =>
            {
                Ok(RawOperand::Path(self.parse_path()?))
            }
            Tok::Name(_) => Ok(RawOperand::Path(self.parse_path()?)),
            _ => Err(self.syntax_error()),
        }
    }

    // ---- conditions ----

    /// Parses a whole ConditionExpression, FilterExpression or
    /// KeyConditionExpression.
    pub fn parse_condition(&mut self) -> PResult<RawCond> {
        let cond = self.parse_or()?;
        self.expect_eof()?;
        Ok(cond)
    }

    fn parse_or(&mut self) -> PResult<RawCond> {
        let mut left = self.parse_and()?;
        while self.peek_keyword("OR") {
            self.advance();
            let right = self.parse_and()?;
            left = RawCond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> PResult<RawCond> {
        let mut left = self.parse_not()?;
        while self.peek_keyword("AND") {
            self.advance();
            let right = self.parse_not()?;
            left = RawCond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_not(&mut self) -> PResult<RawCond> {
        if self.peek_keyword("NOT") {
            self.advance();
            self.enter()?;
            let inner = self.parse_not()?;
            self.leave();
            return Ok(RawCond::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> PResult<RawCond> {
        if *self.peek() == Tok::LParen {
            self.advance();
            self.enter()?;
            let inner = self.parse_or()?;
            self.expect(Tok::RParen)?;
            self.leave();
            return Ok(RawCond::Paren(Box::new(inner)));
        }
        let left = self.parse_operand()?;
        let op = match self.peek() {
            Tok::Eq => Some(CompareOp::Eq),
            Tok::Ne => Some(CompareOp::Ne),
            Tok::Lt => Some(CompareOp::Lt),
            Tok::Le => Some(CompareOp::Le),
            Tok::Gt => Some(CompareOp::Gt),
            Tok::Ge => Some(CompareOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            let right = self.parse_operand()?;
            return Ok(RawCond::Compare(left, op, right));
        }
        if self.peek_keyword("BETWEEN") {
            self.advance();
            let low = self.parse_operand()?;
            if !self.peek_keyword("AND") {
                return Err(self.syntax_error());
            }
            self.advance();
            let high = self.parse_operand()?;
            return Ok(RawCond::Between(left, low, high));
        }
        if self.peek_keyword("IN") {
            self.advance();
            self.expect(Tok::LParen)?;
            let mut list = vec![self.parse_operand()?];
            while *self.peek() == Tok::Comma {
                self.advance();
                list.push(self.parse_operand()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(RawCond::In(left, list));
        }
        match left {
            RawOperand::Call(call) => Ok(RawCond::Call(call)),
            _ => Err(self.syntax_error()),
        }
    }

    // ---- update ----

    /// Parses a whole UpdateExpression.
    pub fn parse_update(&mut self) -> PResult<RawUpdate> {
        let mut update = RawUpdate::default();
        let mut seen: Vec<Clause> = Vec::new();
        while *self.peek() != Tok::Eof {
            let clause = match self.peek() {
                Tok::Ident(w) => Clause::from_word(w),
                _ => None,
            };
            let Some(clause) = clause else {
                return Err(self.syntax_error());
            };
            self.advance();
            if seen.contains(&clause) && update.repeated_clause.is_none() {
                update.repeated_clause = Some(clause);
            }
            seen.push(clause);
            loop {
                let path = self.parse_path()?;
                let action = match clause {
                    Clause::Set => {
                        self.expect(Tok::Eq)?;
                        RawAction::Set(path, self.parse_set_value()?)
                    }
                    Clause::Remove => RawAction::Remove(path),
                    Clause::Add | Clause::Delete => {
                        let Tok::Value(v) = self.peek().clone() else {
                            return Err(self.syntax_error());
                        };
                        self.advance();
                        if clause == Clause::Add {
                            RawAction::Add(path, v)
                        } else {
                            RawAction::Delete(path, v)
                        }
                    }
                };
                update.actions.push(action);
                if *self.peek() == Tok::Comma {
                    self.advance();
                } else {
                    break;
                }
            }
        }
        Ok(update)
    }

    fn parse_set_value(&mut self) -> PResult<RawOperand> {
        let left = self.parse_operand()?;
        match self.peek() {
            Tok::Plus => {
                self.advance();
                let right = self.parse_operand()?;
                Ok(RawOperand::Plus(Box::new(left), Box::new(right)))
            }
            Tok::Minus => {
                self.advance();
                let right = self.parse_operand()?;
                Ok(RawOperand::Minus(Box::new(left), Box::new(right)))
            }
            _ => Ok(left),
        }
    }

    // ---- projection ----

    /// Parses a whole ProjectionExpression.
    pub fn parse_projection(&mut self) -> PResult<Vec<RawPath>> {
        let mut paths = vec![self.parse_path()?];
        while *self.peek() == Tok::Comma {
            self.advance();
            paths.push(self.parse_path()?);
        }
        self.expect_eof()?;
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(src: &str) -> RawCond {
        match Parser::new(src, ExpressionKind::Condition).parse_condition() {
            Ok(c) => c,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn cond_err(src: &str) -> String {
        match Parser::new(src, ExpressionKind::Condition).parse_condition() {
            Ok(c) => panic!("{src} parsed as {c:?}"),
            Err(e) => e.message,
        }
    }

    fn p(name: &str) -> RawOperand {
        RawOperand::Path(RawPath(vec![RawElem::Bare(name.into())]))
    }

    fn v(name: &str) -> RawOperand {
        RawOperand::Value(name.into())
    }

    fn eq(a: &str, b: &str) -> RawCond {
        RawCond::Compare(p(a), CompareOp::Eq, v(b))
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let c = cond("a = :a OR b = :b AND c = :c");
        assert_eq!(
            c,
            RawCond::Or(
                Box::new(eq("a", ":a")),
                Box::new(RawCond::And(
                    Box::new(eq("b", ":b")),
                    Box::new(eq("c", ":c"))
                ))
            )
        );
    }

    #[test]
    fn not_binds_tighter_than_and() {
        let c = cond("NOT a = :a AND b = :b");
        assert_eq!(
            c,
            RawCond::And(
                Box::new(RawCond::Not(Box::new(eq("a", ":a")))),
                Box::new(eq("b", ":b"))
            )
        );
    }

    #[test]
    fn keywords_are_case_insensitive_and_between_consumes_its_and() {
        let c = cond("a between :x and :y And not b In (:p, :q)");
        assert_eq!(
            c,
            RawCond::And(
                Box::new(RawCond::Between(p("a"), v(":x"), v(":y"))),
                Box::new(RawCond::Not(Box::new(RawCond::In(
                    p("b"),
                    vec![v(":p"), v(":q")]
                ))))
            )
        );
    }

    #[test]
    fn chains_are_left_associative() {
        let c = cond("a = :a AND b = :b AND c = :c");
        assert_eq!(
            c,
            RawCond::And(
                Box::new(RawCond::And(
                    Box::new(eq("a", ":a")),
                    Box::new(eq("b", ":b"))
                )),
                Box::new(eq("c", ":c"))
            )
        );
    }

    #[test]
    fn parses_paths_functions_and_parentheses() {
        let c = cond("(size(#m.b[3].c) >= :n)");
        let path = RawPath(vec![
            RawElem::Name("#m".into()),
            RawElem::Bare("b".into()),
            RawElem::Index(3),
            RawElem::Bare("c".into()),
        ]);
        assert_eq!(
            c,
            RawCond::Paren(Box::new(RawCond::Compare(
                RawOperand::Call(RawCall {
                    name: "size".into(),
                    args: vec![RawOperand::Path(path)]
                }),
                CompareOp::Ge,
                v(":n")
            )))
        );
        assert_eq!(
            cond("attribute_exists(a)"),
            RawCond::Call(RawCall {
                name: "attribute_exists".into(),
                args: vec![p("a")]
            })
        );
    }

    #[test]
    fn syntax_errors_name_the_token_and_its_neighbours() {
        assert_eq!(
            cond_err("a = "),
            "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"=\""
        );
        assert_eq!(
            cond_err("a = :v b"),
            "Invalid ConditionExpression: Syntax error; token: \"b\", near: \":v b\""
        );
        assert_eq!(
            cond_err("a == :v"),
            "Invalid ConditionExpression: Syntax error; token: \"=\", near: \"== :v\""
        );
        assert_eq!(
            cond_err("a = :v AND"),
            "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"AND\""
        );
        assert_eq!(
            cond_err("a[x] = :v"),
            "Invalid ConditionExpression: Syntax error; token: \"x\", near: \"[x]\""
        );
        assert_eq!(
            cond_err("a"),
            "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"a\""
        );
        assert_eq!(
            cond_err("(a = :v"),
            "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \":v\""
        );
    }

    #[test]
    fn update_syntax_error_matches_dynamodb() {
        let err = Parser::new("INVALID SYNTAX HERE", ExpressionKind::Update).parse_update();
        assert_eq!(
            err.map_err(|e| e.message),
            Err("Invalid UpdateExpression: Syntax error; token: \"INVALID\", near: \"INVALID SYNTAX\"".to_string())
        );
    }

    #[test]
    fn projection_syntax_error_matches_dynamodb() {
        let err = Parser::new("!!!", ExpressionKind::Projection).parse_projection();
        assert_eq!(
            err.map_err(|e| e.message),
            Err(
                "Invalid ProjectionExpression: Syntax error; token: \"!\", near: \"!!\""
                    .to_string()
            )
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("{}a = :v{}", "(".repeat(5000), ")".repeat(5000));
        assert!(cond_err(&src).contains("nested too deeply"));
        let src = format!("{}a = :v", "NOT ".repeat(5000));
        assert!(cond_err(&src).contains("nested too deeply"));
        let src = format!("{}a{}", "size(".repeat(5000), ")".repeat(5000));
        assert!(cond_err(&src).contains("nested too deeply"));
    }

    #[test]
    fn parses_update_clauses() {
        let u = Parser::new(
            "SET a = b + :c, d = list_append(d, :l) REMOVE e[1] ADD f :g DELETE h :i",
            ExpressionKind::Update,
        )
        .parse_update()
        .map_err(|e| e.message);
        let Ok(u) = u else { panic!("{u:?}") };
        assert_eq!(u.actions.len(), 5);
        assert_eq!(u.repeated_clause, None);
        let u =
            Parser::new("set a = :b remove c SET d = :e", ExpressionKind::Update).parse_update();
        assert_eq!(u.map(|u| u.repeated_clause), Ok(Some(Clause::Set)));
        for bad in [
            "SET a = :b + :c + :d",
            "SET a",
            "REMOVE",
            "ADD a b",
            "SET a = :b,",
            "SET :a = b",
        ] {
            assert!(
                Parser::new(bad, ExpressionKind::Update)
                    .parse_update()
                    .is_err(),
                "{bad}"
            );
        }
    }
}
