//! PartiQL tokens: words (keywords and bare identifiers), double-quoted
//! identifiers, single-quoted strings, numbers, `?` parameters and
//! punctuation, each with its position (line, column, length) for DynamoDB's
//! "... at 1:8:5" error suffixes.

use super::malformed;
use crate::error::ApiError;

/// Where a token starts (1-based line and column) and its length in chars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

impl Pos {
    /// Renders the position as DynamoDB appends it to messages: `1:8:5`.
    pub fn suffix(&self) -> String {
        format!("{}:{}:{}", self.line, self.column, self.len)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: a keyword (compared case-insensitively) or identifier.
    Word(String),
    /// A double-quoted identifier.
    Quoted(String),
    /// A single-quoted string literal.
    Str(String),
    /// A number literal, as written.
    Num(String),
    /// A `?` parameter.
    Param,
    /// Punctuation and operators: `* , . [ ] { } ( ) = <> != < <= > >= + - << >> ;`.
    Punct(&'static str),
    /// An Ion literal between backticks (DynamoDB rejects these).
    Ion,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

const PUNCT: &[&str] = &[
    "<<", ">>", "<>", "!=", "<=", ">=", "*", ",", ".", "[", "]", "{", "}", "(", ")", "=", "<", ">",
    "+", "-", ";", ":",
];

/// Splits a statement into tokens.
pub fn tokenize(input: &str) -> Result<Vec<Token>, ApiError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut line_start = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            line_start = i;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // Comments: `-- ...` to end of line, `/* ... */`.
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    line += 1;
                    line_start = i + 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(malformed("Unexpected end of statement"));
            }
            i += 2;
            continue;
        }
        let start = i;
        let column = start - line_start + 1;
        let tok = if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            Tok::Word(chars[start..i].iter().collect())
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            i = scan_number(&chars, i);
            Tok::Num(chars[start..i].iter().collect())
        } else if c == '\'' || c == '"' {
            let (text, next) = scan_quoted(&chars, i, c)?;
            i = next;
            if c == '\'' {
                Tok::Str(text)
            } else {
                Tok::Quoted(text)
            }
        } else if c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != '`' {
                i += 1;
            }
            if i >= chars.len() {
                return Err(malformed("Unexpected end of statement"));
            }
            i += 1;
            Tok::Ion
        } else if c == '?' {
            i += 1;
            Tok::Param
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            match PUNCT.iter().find(|p| rest.starts_with(**p)) {
                Some(p) => {
                    i += p.len();
                    Tok::Punct(p)
                }
                None => return Err(malformed("Invalid character")),
            }
        };
        out.push(Token {
            tok,
            pos: Pos {
                line,
                column,
                len: i - start,
            },
        });
    }
    Ok(out)
}

fn scan_number(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    if i < chars.len() && chars[i] == '.' {
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
            j += 1;
        }
        if j < chars.len() && chars[j].is_ascii_digit() {
            i = j;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// Scans a quoted token starting at the opening `quote`; a doubled quote
/// stands for one. Returns the text and the index after the closing quote.
fn scan_quoted(chars: &[char], start: usize, quote: char) -> Result<(String, usize), ApiError> {
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(malformed("Unexpected end of statement")),
            Some(&c) if c == quote => {
                if chars.get(i + 1) == Some(&quote) {
                    text.push(quote);
                    i += 2;
                } else {
                    return Ok((text, i + 1));
                }
            }
            Some(&c) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn splits_words_strings_numbers_and_operators() {
        assert_eq!(
            toks(r#"SELECT a."b c" FROM "T" WHERE x <= 1.5e3 AND y <> 'it''s' OR z = ?"#),
            vec![
                Tok::Word("SELECT".into()),
                Tok::Word("a".into()),
                Tok::Punct("."),
                Tok::Quoted("b c".into()),
                Tok::Word("FROM".into()),
                Tok::Quoted("T".into()),
                Tok::Word("WHERE".into()),
                Tok::Word("x".into()),
                Tok::Punct("<="),
                Tok::Num("1.5e3".into()),
                Tok::Word("AND".into()),
                Tok::Word("y".into()),
                Tok::Punct("<>"),
                Tok::Str("it's".into()),
                Tok::Word("OR".into()),
                Tok::Word("z".into()),
                Tok::Punct("="),
                Tok::Param,
            ]
        );
        assert_eq!(
            toks("<<1,2>> -- comment\n/* c */ [a]"),
            vec![
                Tok::Punct("<<"),
                Tok::Num("1".into()),
                Tok::Punct(","),
                Tok::Num("2".into()),
                Tok::Punct(">>"),
                Tok::Punct("["),
                Tok::Word("a".into()),
                Tok::Punct("]"),
            ]
        );
    }

    #[test]
    fn positions_are_line_column_length() {
        let t = tokenize("SELECT count(*)\n  FROM x").unwrap();
        assert_eq!(
            t[1].pos,
            Pos {
                line: 1,
                column: 8,
                len: 5
            }
        );
        assert_eq!(t[1].pos.suffix(), "1:8:5");
        assert_eq!(
            t[5].pos,
            Pos {
                line: 2,
                column: 3,
                len: 4
            }
        );
    }

    #[test]
    fn unterminated_and_invalid_input_is_an_error() {
        assert!(tokenize("SELECT 'abc").is_err());
        assert!(tokenize("SELECT \"abc").is_err());
        assert!(tokenize("SELECT #").is_err());
        assert!(tokenize("/* open").is_err());
    }
}
