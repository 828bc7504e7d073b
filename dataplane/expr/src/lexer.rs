//! Tokenizer shared by every expression kind.
//!
//! Keywords are not distinguished here: `AND`, `SET`, `between` ... are all
//! [`Tok::Ident`] and the parser matches them case-insensitively. A character
//! that starts no token becomes [`Tok::Unknown`], so the parser reports it as
//! a syntax error with DynamoDB's "token"/"near" context.

/// One kind of token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: attribute name, keyword or function name.
    Ident(String),
    /// `#name`, including the `#`.
    Name(String),
    /// `:value`, including the `:`.
    Value(String),
    /// A run of decimal digits (list indexes).
    Int(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    /// A character that starts no token.
    Unknown(char),
    Eof,
}

/// A token and its byte span in the expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `src` into tokens; the last one is always [`Tok::Eof`].
pub fn tokenize(src: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        chars.next();
        let mut end = start + c.len_utf8();
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '=' => Tok::Eq,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '<' | '>' => {
                let next = chars.peek().map(|&(_, n)| n);
                match (c, next) {
                    ('<', Some('>')) => {
                        chars.next();
                        end += 1;
                        Tok::Ne
                    }
                    ('<', Some('=')) => {
                        chars.next();
                        end += 1;
                        Tok::Le
                    }
                    ('>', Some('=')) => {
                        chars.next();
                        end += 1;
                        Tok::Ge
                    }
                    ('<', _) => Tok::Lt,
                    _ => Tok::Gt,
                }
            }
            '#' | ':' => {
                while let Some(&(i, n)) = chars.peek() {
                    if !is_word_char(n) {
                        break;
                    }
                    chars.next();
                    end = i + n.len_utf8();
                }
                if end == start + 1 {
                    Tok::Unknown(c)
                } else if c == '#' {
                    Tok::Name(src[start..end].to_string())
                } else {
                    Tok::Value(src[start..end].to_string())
                }
            }
            c if is_word_char(c) => {
                while let Some(&(i, n)) = chars.peek() {
                    if !is_word_char(n) {
                        break;
                    }
                    chars.next();
                    end = i + n.len_utf8();
                }
                let word = &src[start..end];
                if word.bytes().all(|b| b.is_ascii_digit()) {
                    Tok::Int(word.to_string())
                } else {
                    Tok::Ident(word.to_string())
                }
            }
            other => Tok::Unknown(other),
        };
        out.push(Token { tok, start, end });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        tokenize(src).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokenizes_operators_and_placeholders() {
        assert_eq!(
            kinds("#a.b[10] <> :v1 AND x<=y>=z<w>q"),
            vec![
                Tok::Name("#a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::LBracket,
                Tok::Int("10".into()),
                Tok::RBracket,
                Tok::Ne,
                Tok::Value(":v1".into()),
                Tok::Ident("AND".into()),
                Tok::Ident("x".into()),
                Tok::Le,
                Tok::Ident("y".into()),
                Tok::Ge,
                Tok::Ident("z".into()),
                Tok::Lt,
                Tok::Ident("w".into()),
                Tok::Gt,
                Tok::Ident("q".into()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn unknown_characters_and_bare_sigils() {
        assert_eq!(
            kinds("!é #"),
            vec![
                Tok::Unknown('!'),
                Tok::Unknown('é'),
                Tok::Unknown('#'),
                Tok::Eof
            ]
        );
        let toks = tokenize("a é");
        assert_eq!((toks[1].start, toks[1].end), (2, 4));
        assert_eq!((toks[2].start, toks[2].end), (4, 4));
    }
}
