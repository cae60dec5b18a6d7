//! The lighttpd 1.4 configuration language: lexer, parser, printer and the
//! per-request condition evaluator.
//!
//! The parser does not know which keys exist; checking keys against the
//! module key tables is the server's job. Its output is a flat list of
//! blocks: block 0 holds the global settings, every `$FIELD["..."] op "..."`
//! block (and every `else` branch) gets its own entry, in document order, so
//! a parent always has a smaller id than its children.

mod cond;
mod eval;
mod lexer;
mod parser;
mod print;

pub use cond::{CondField, CondOp, Condition, Matcher};
pub use eval::{Evaluation, RequestFacts};
pub use parser::ParseOptions;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in a configuration file (1-based line and column, columns in
/// characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<Path>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub loc: Option<Location>,
    pub msg: String,
}

impl ConfigError {
    pub(crate) fn at(loc: &Location, msg: impl Into<String>) -> Self {
        ConfigError { loc: Some(loc.clone()), msg: msg.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.loc {
            Some(loc) => write!(f, "{loc}: {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Array(Vec<Entry>),
}

/// One element of an array; `key` is `Some` for `"k" => v` elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Option<String>,
    pub value: Value,
}

impl Value {
    /// lighttpd's boolean spellings: enable/disable, true/false, 1/0.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            Value::Str(s) => {
                let s = s.trim();
                if ["enable", "true", "1"].iter().any(|w| s.eq_ignore_ascii_case(w)) {
                    Some(true)
                } else if ["disable", "false", "0"].iter().any(|w| s.eq_ignore_ascii_case(w)) {
                    Some(false)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Also accepts a decimal string, because lighttpd configs often quote
    /// numbers and lighttpd converts them.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Array(_) => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Entry]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Array(_) => "array",
        }
    }

    /// Looks up a `"k" => v` element of an array by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_array()?.iter().find(|e| e.key.as_deref() == Some(key)).map(|e| &e.value)
    }
}

/// The final value of `key` in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: Value,
    /// Where the last assignment to the key in this block was made.
    pub loc: Location,
}

#[derive(Debug, Clone)]
pub struct Block {
    /// Index in [`Config::blocks`]; 0 is the global block.
    pub id: usize,
    /// Enclosing block (`None` only for block 0).
    pub parent: Option<usize>,
    /// `None` for block 0 and for a plain `else { }` branch.
    pub cond: Option<Condition>,
    /// For an `else` / else-if branch: the previous block of the chain. This
    /// block matches only if none of the earlier branches did.
    pub else_of: Option<usize>,
    pub settings: Vec<Setting>,
    pub loc: Location,
}

impl Block {
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub blocks: Vec<Block>,
    /// Every file read, main file and includes, in reading order.
    pub files: Vec<PathBuf>,
}

impl Config {
    pub fn global(&self, key: &str) -> Option<&Setting> {
        self.blocks.first()?.get(key)
    }

    /// The value of `key` that applies to a request: like lighttpd, the last
    /// matching block (in document order) that sets it wins.
    pub fn effective(&self, ev: &Evaluation, key: &str) -> Option<&Setting> {
        self.blocks.iter().rev().filter(|b| ev.matched(b.id)).find_map(|b| b.get(key))
    }

    /// The parsed configuration as text (for `featherd -p`): every block with
    /// its final values, variables and includes expanded. It parses back to
    /// the same blocks and settings.
    pub fn print(&self) -> String {
        print::print(self)
    }
}

/// Parses the configuration file at `path` and everything it includes.
pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
    parser::parse_file(path, &ParseOptions::default())
}

/// Parses `text` as if it were the file `name`; relative includes are
/// resolved against `name`'s directory.
pub fn parse_str(text: &str, name: &Path) -> Result<Config, ConfigError> {
    parser::parse_str(text, name, &ParseOptions::default())
}

/// [`parse_str`] with options (e.g. includes disabled for untrusted input).
pub fn parse_str_with(text: &str, name: &Path, opts: &ParseOptions) -> Result<Config, ConfigError> {
    parser::parse_str(text, name, opts)
}

/// [`parse_file`] with options.
pub fn parse_file_with(path: &Path, opts: &ParseOptions) -> Result<Config, ConfigError> {
    parser::parse_file(path, opts)
}
