//! Tokenizer for lighttpd's configuration language.

use super::{ConfigError, Location};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Str(String),
    Int(String),
    Ident(String),
    Dollar,
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Arrow,
    Assign,
    Append,
    Force,
    Plus,
    Eq,
    Ne,
    Match,
    NoMatch,
    Prefix,
    Suffix,
    Eof,
}

impl Tok {
    /// How a token is named in "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Str(s) => {
                let mut short: String = s.chars().take(40).collect();
                if short.len() < s.len() {
                    short.push_str("...");
                }
                format!("string \"{short}\"")
            }
            Tok::Int(s) => format!("integer {s}"),
            Tok::Ident(s) => format!("\"{s}\""),
            Tok::Eof => "end of file".to_string(),
            other => format!("\"{}\"", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Dollar => "$",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Arrow => "=>",
            Tok::Assign => "=",
            Tok::Append => "+=",
            Tok::Force => ":=",
            Tok::Plus => "+",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Match => "=~",
            Tok::NoMatch => "!~",
            Tok::Prefix => "=^",
            Tok::Suffix => "=$",
            Tok::Str(_) | Tok::Int(_) | Tok::Ident(_) | Tok::Eof => "",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: u32,
    pub col: u32,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }
}

/// Splits `text` into tokens. Newlines are not tokens: statement boundaries
/// are unambiguous in this grammar, so a recursive-descent parser does not
/// need them (lighttpd's LALR parser does).
pub(crate) fn tokenize(text: &str, file: &Arc<Path>) -> Result<Vec<Token>, ConfigError> {
    let mut cur = Cursor { chars: text.chars().peekable(), line: 1, col: 1 };
    let mut out = Vec::new();
    let err = |line: u32, col: u32, msg: String| ConfigError {
        loc: Some(Location { file: file.clone(), line, col }),
        msg,
    };
    loop {
        let (line, col) = (cur.line, cur.col);
        let Some(c) = cur.bump() else {
            out.push(Token { tok: Tok::Eof, line, col });
            return Ok(out);
        };
        let tok = match c {
            ' ' | '\t' | '\r' | '\n' | '\u{a0}' => continue,
            '#' => {
                while let Some(c) = cur.peek() {
                    if c == '\n' {
                        break;
                    }
                    cur.bump();
                }
                continue;
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match cur.bump() {
                        None => return Err(err(line, col, "unterminated string".into())),
                        Some('"') => break,
                        // lighttpd knows exactly one escape: \" for a quote;
                        // every other backslash is literal (regexes rely on it).
                        Some('\\') if cur.peek() == Some('"') => {
                            cur.bump();
                            s.push('"');
                        }
                        Some('\0') => {
                            return Err(err(cur.line, cur.col.saturating_sub(1), "NUL byte in string".into()))
                        }
                        Some(c) => s.push(c),
                    }
                }
                Tok::Str(s)
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            ',' => Tok::Comma,
            '$' => Tok::Dollar,
            '+' => {
                if cur.peek() == Some('=') {
                    cur.bump();
                    Tok::Append
                } else {
                    Tok::Plus
                }
            }
            ':' => {
                if cur.peek() == Some('=') {
                    cur.bump();
                    Tok::Force
                } else {
                    return Err(err(line, col, "unexpected character ':' (did you mean \":=\"?)".into()));
                }
            }
            '=' => {
                let t = match cur.peek() {
                    Some('=') => Tok::Eq,
                    Some('~') => Tok::Match,
                    Some('^') => Tok::Prefix,
                    Some('$') => Tok::Suffix,
                    Some('>') => Tok::Arrow,
                    _ => Tok::Assign,
                };
                if t != Tok::Assign {
                    cur.bump();
                }
                t
            }
            '!' => match cur.peek() {
                Some('=') => {
                    cur.bump();
                    Tok::Ne
                }
                Some('~') => {
                    cur.bump();
                    Tok::NoMatch
                }
                _ => return Err(err(line, col, "unexpected '!' (only \"!=\" and \"!~\" exist)".into())),
            },
            ';' => {
                return Err(err(line, col, "unexpected ';' (statements are separated by newlines)".into()))
            }
            '\0' => return Err(err(line, col, "stray NUL byte".into())),
            c if c.is_ascii_digit() => {
                let mut s = String::from(c);
                while let Some(d) = cur.peek().filter(char::is_ascii_digit) {
                    s.push(d);
                    cur.bump();
                }
                if let Some(n) = cur.peek().filter(|&c| is_key_char(c)) {
                    return Err(err(
                        cur.line,
                        cur.col,
                        format!("unexpected character '{n}' after integer {s} (integers are plain decimal digits)"),
                    ));
                }
                Tok::Int(s)
            }
            c if is_key_char(c) => {
                let mut s = String::from(c);
                while let Some(d) = cur.peek().filter(|&c| is_key_char(c)) {
                    s.push(d);
                    cur.bump();
                }
                Tok::Ident(s)
            }
            c => return Err(err(line, col, format!("unexpected character {c:?}"))),
        };
        out.push(Token { tok, line, col });
    }
}
