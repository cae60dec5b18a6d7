//! Recursive-descent parser. Values are computed while parsing (as lighttpd
//! does), so `+=`, variable references and includes see exactly the state
//! the file has built up to that point.

use super::cond::{CondField, CondOp, Condition};
use super::lexer::{tokenize, Tok, Token};
use super::{Block, Config, ConfigError, Entry, Location, Setting, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Knobs for untrusted input (the fuzzer) and for tests.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Allow `include "file"`.
    pub includes: bool,
    /// Allow `include_shell "command"`.
    pub include_shell: bool,
    /// How deep includes may nest before the parser gives up (catches a
    /// file including itself).
    pub max_include_depth: usize,
    /// How deep blocks and arrays may nest, so the parser's recursion is
    /// bounded.
    pub max_nesting: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { includes: true, include_shell: true, max_include_depth: 32, max_nesting: 64 }
    }
}

/// Upper bound on the size of one value, so `var.a = var.a + var.a`
/// repeated cannot exhaust memory.
const MAX_WEIGHT: usize = 1 << 20;
/// Same limit lighttpd applies to one configuration file.
const MAX_FILE_SIZE: u64 = 32 << 20;

struct Stream {
    toks: Vec<Token>,
    pos: usize,
    file: Arc<Path>,
    dir: PathBuf,
}

impl Stream {
    fn peek(&self) -> &Token {
        // tokenize() always ends the list with Eof and next() never steps
        // past it, so the fallback is unreachable; it just avoids indexing.
        self.toks.get(self.pos).or(self.toks.last()).unwrap_or(&EOF)
    }

    fn peek2(&self) -> &Tok {
        self.toks.get(self.pos + 1).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn loc(&self, t: &Token) -> Location {
        Location { file: self.file.clone(), line: t.line, col: t.col }
    }

    fn here(&self) -> Location {
        self.loc(self.peek())
    }

    fn err(&self, t: &Token, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.loc(t), msg)
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<Token, ConfigError> {
        let t = self.next();
        if t.tok == want {
            Ok(t)
        } else {
            let want_s = match &want {
                Tok::Ident(s) => format!("\"{s}\""),
                other => other.describe(),
            };
            Err(self.err(&t, format!("expected {want_s} {context}, found {}", t.tok.describe())))
        }
    }
}

static EOF: Token = Token { tok: Tok::Eof, line: 0, col: 0 };

fn is_else(tok: &Tok) -> bool {
    matches!(tok, Tok::Ident(s) if matches!(s.as_str(), "else" | "elif" | "elsif" | "elseif"))
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read_limited(path: &Path) -> std::io::Result<String> {
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err(std::io::Error::other("file larger than 32 MiB"));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A rough size of a value, capped just above `MAX_WEIGHT`.
fn weight(v: &Value) -> usize {
    fn go(v: &Value, acc: &mut usize) {
        if *acc > MAX_WEIGHT {
            return;
        }
        match v {
            Value::Str(s) => *acc += 1 + s.len() / 16,
            Value::Int(_) => *acc += 1,
            Value::Array(a) => {
                *acc += 1;
                for e in a {
                    go(&e.value, acc);
                    if *acc > MAX_WEIGHT {
                        return;
                    }
                }
            }
        }
    }
    let mut acc = 0;
    go(v, &mut acc);
    acc
}

/// lighttpd's `+`: strings concatenate (integers are formatted into them),
/// integers add, arrays append (refusing duplicate keys).
fn merge(a: Value, b: Value) -> Result<Value, String> {
    let v = match (a, b) {
        (Value::Str(mut a), Value::Str(b)) => {
            a.push_str(&b);
            Value::Str(a)
        }
        (Value::Str(mut a), Value::Int(b)) => {
            a.push_str(&b.to_string());
            Value::Str(a)
        }
        (Value::Int(a), Value::Str(b)) => Value::Str(format!("{a}{b}")),
        (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_add(b).ok_or("integer overflow in \"+\"")?),
        (Value::Array(mut a), Value::Array(b)) => {
            for e in b {
                if let Some(k) = &e.key {
                    if a.iter().any(|x| x.key.as_ref() == Some(k)) {
                        return Err(format!("duplicate array key \"{k}\" when merging arrays"));
                    }
                }
                a.push(e);
            }
            Value::Array(a)
        }
        (a, b) => {
            return Err(format!(
                "type error: cannot combine {} and {} with \"+\"",
                a.type_name(),
                b.type_name()
            ))
        }
    };
    if weight(&v) > MAX_WEIGHT {
        return Err("value too large".into());
    }
    Ok(v)
}

#[derive(Clone, Copy, PartialEq)]
enum AssignOp {
    Set,
    Append,
    Force,
}

struct Parser<'o> {
    opts: &'o ParseOptions,
    blocks: Vec<Block>,
    /// `var.*` per block; kept out of `Block::settings` because they are
    /// only a parse-time device.
    vars: Vec<Vec<Setting>>,
    files: Vec<PathBuf>,
    main_dir: PathBuf,
    include_depth: usize,
}

pub(crate) fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Config, ConfigError> {
    let text = read_limited(path).map_err(|e| ConfigError {
        loc: None,
        msg: format!("cannot read config file \"{}\": {e}", path.display()),
    })?;
    let mut p = Parser::new(opts, path);
    p.files.push(path.to_path_buf());
    p.run(&text, path)
}

pub(crate) fn parse_str(text: &str, name: &Path, opts: &ParseOptions) -> Result<Config, ConfigError> {
    Parser::new(opts, name).run(text, name)
}

impl<'o> Parser<'o> {
    fn new(opts: &'o ParseOptions, main: &Path) -> Self {
        let file: Arc<Path> = Arc::from(main);
        let loc = Location { file, line: 1, col: 1 };
        let cwd = std::env::current_dir().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let predefined = vec![
            Setting {
                key: "var.PID".into(),
                value: Value::Int(i64::from(std::process::id())),
                loc: loc.clone(),
            },
            Setting { key: "var.CWD".into(), value: Value::Str(cwd), loc: loc.clone() },
        ];
        Parser {
            opts,
            blocks: vec![Block { id: 0, parent: None, cond: None, else_of: None, settings: Vec::new(), loc }],
            vars: vec![predefined],
            files: Vec::new(),
            main_dir: dir_of(main),
            include_depth: 0,
        }
    }

    fn run(mut self, text: &str, name: &Path) -> Result<Config, ConfigError> {
        let file: Arc<Path> = Arc::from(name);
        let mut s = Stream { toks: tokenize(text, &file)?, pos: 0, file, dir: dir_of(name) };
        self.statements(&mut s, 0, 0, None)?;
        Ok(Config { blocks: self.blocks, files: self.files })
    }

    /// Statements up to the end of the input or (when `open` is the location
    /// of a `{`) up to the matching `}`, which is left for the caller.
    fn statements(
        &mut self,
        s: &mut Stream,
        block: usize,
        depth: usize,
        open: Option<&Location>,
    ) -> Result<(), ConfigError> {
        loop {
            let t = s.peek().clone();
            match &t.tok {
                Tok::Eof => {
                    return match open {
                        None => Ok(()),
                        Some(o) => Err(s.err(
                            &t,
                            format!(
                                "expected \"}}\" to close the block opened at {}:{}, found end of file",
                                o.line, o.col
                            ),
                        )),
                    }
                }
                Tok::RBrace => {
                    return match open {
                        Some(_) => Ok(()),
                        None => Err(s.err(&t, "unexpected \"}\" without an open block")),
                    }
                }
                Tok::Dollar => self.cond_chain(s, block, depth)?,
                Tok::Ident(name) => match name.as_str() {
                    "include" => {
                        s.next();
                        self.include(s, block, depth)?;
                    }
                    "include_shell" => {
                        s.next();
                        self.include_shell(s, block, depth)?;
                    }
                    "global" => {
                        s.next();
                        if block != 0 {
                            return Err(s.err(&t, "\"global { }\" is only allowed at the top level"));
                        }
                        let lb = s.expect(Tok::LBrace, "after \"global\"")?;
                        let open_loc = s.loc(&lb);
                        self.check_depth(s, &lb, depth)?;
                        self.statements(s, 0, depth + 1, Some(&open_loc))?;
                        s.expect(Tok::RBrace, "to close \"global\"")?;
                    }
                    "if" if *s.peek2() == Tok::Dollar => {
                        s.next();
                    }
                    n if is_else(&t.tok) => {
                        return Err(s.err(&t, format!("\"{n}\" without a preceding condition block")));
                    }
                    _ => self.assignment(s, block, depth)?,
                },
                other => {
                    return Err(s.err(
                        &t,
                        format!(
                            "expected a key, a condition, \"include\" or \"}}\", found {}",
                            other.describe()
                        ),
                    ))
                }
            }
        }
    }

    fn check_depth(&self, s: &Stream, t: &Token, depth: usize) -> Result<(), ConfigError> {
        if depth >= self.opts.max_nesting {
            Err(s.err(t, format!("nesting too deep (limit {})", self.opts.max_nesting)))
        } else {
            Ok(())
        }
    }

    fn assignment(&mut self, s: &mut Stream, block: usize, depth: usize) -> Result<(), ConfigError> {
        let kt = s.next();
        let key = match &kt.tok {
            Tok::Ident(k) => k.clone(),
            _ => return Err(s.err(&kt, "expected a key")),
        };
        let ot = s.next();
        let op = match ot.tok {
            Tok::Assign => AssignOp::Set,
            Tok::Append => AssignOp::Append,
            Tok::Force => AssignOp::Force,
            ref other => {
                return Err(s.err(
                    &ot,
                    format!("expected \"=\", \"+=\" or \":=\" after \"{key}\", found {}", other.describe()),
                ))
            }
        };
        let (value, _) = self.expr(s, block, depth)?;
        let loc = s.loc(&kt);
        if key.starts_with("env.") {
            return Err(ConfigError::at(
                &loc,
                format!("cannot assign to \"{key}\": env.* reads the process environment"),
            ));
        }
        let is_var = key.starts_with("var.");
        let existing = self.list(block, is_var).iter().position(|x| x.key == key);
        match (op, existing) {
            (AssignOp::Set, Some(_)) => Err(ConfigError::at(
                &loc,
                format!("duplicate config variable \"{key}\" (use \":=\" to override or \"+=\" to append)"),
            )),
            (AssignOp::Set | AssignOp::Force, None) => {
                self.list_mut(block, is_var).push(Setting { key, value, loc });
                Ok(())
            }
            (AssignOp::Force, Some(i)) => {
                self.list_mut(block, is_var)[i] = Setting { key, value, loc };
                Ok(())
            }
            (AssignOp::Append, Some(i)) => {
                let slot = &mut self.list_mut(block, is_var)[i];
                let old = std::mem::replace(&mut slot.value, Value::Int(0));
                slot.value =
                    merge(old, value).map_err(|m| ConfigError::at(&loc, format!("in \"{key} +=\": {m}")))?;
                slot.loc = loc;
                Ok(())
            }
            (AssignOp::Append, None) => {
                // lighttpd starts from the value the enclosing blocks give.
                let base = self.blocks[block].parent.and_then(|p| self.lookup(p, &key)).cloned();
                let value = match base {
                    Some(b) => {
                        merge(b, value).map_err(|m| ConfigError::at(&loc, format!("in \"{key} +=\": {m}")))?
                    }
                    None => value,
                };
                self.list_mut(block, is_var).push(Setting { key, value, loc });
                Ok(())
            }
        }
    }

    fn list(&self, block: usize, is_var: bool) -> &Vec<Setting> {
        if is_var {
            &self.vars[block]
        } else {
            &self.blocks[block].settings
        }
    }

    fn list_mut(&mut self, block: usize, is_var: bool) -> &mut Vec<Setting> {
        if is_var {
            &mut self.vars[block]
        } else {
            &mut self.blocks[block].settings
        }
    }

    /// The value `key` has in `block`, looking outward through enclosing blocks.
    fn lookup(&self, block: usize, key: &str) -> Option<&Value> {
        let is_var = key.starts_with("var.");
        let mut b = Some(block);
        while let Some(id) = b {
            if let Some(st) = self.list(id, is_var).iter().find(|x| x.key == key) {
                return Some(&st.value);
            }
            b = self.blocks[id].parent;
        }
        None
    }

    fn expr(&mut self, s: &mut Stream, block: usize, depth: usize) -> Result<(Value, Location), ConfigError> {
        let loc = s.here();
        let mut v = self.term(s, block, depth)?;
        while s.peek().tok == Tok::Plus {
            let plus = s.next();
            let rhs = self.term(s, block, depth)?;
            v = merge(v, rhs).map_err(|m| s.err(&plus, m))?;
        }
        Ok((v, loc))
    }

    fn term(&mut self, s: &mut Stream, block: usize, depth: usize) -> Result<Value, ConfigError> {
        let t = s.next();
        match &t.tok {
            Tok::Str(v) => Ok(Value::Str(v.clone())),
            Tok::Int(digits) => digits
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| s.err(&t, format!("integer {digits} is out of range"))),
            Tok::LParen => self.array(s, &t, block, depth + 1),
            Tok::Ident(name) => {
                if let Some(var) = name.strip_prefix("env.") {
                    return match std::env::var(var) {
                        Ok(v) => Ok(Value::Str(v)),
                        Err(_) => Err(s.err(&t, format!("environment variable \"{var}\" is not set"))),
                    };
                }
                match self.lookup(block, name) {
                    Some(v) => Ok(v.clone()),
                    None => Err(s.err(&t, format!("undefined variable \"{name}\""))),
                }
            }
            other => Err(s.err(
                &t,
                format!("expected a value (string, integer, array or variable), found {}", other.describe()),
            )),
        }
    }

    fn array(
        &mut self,
        s: &mut Stream,
        open: &Token,
        block: usize,
        depth: usize,
    ) -> Result<Value, ConfigError> {
        self.check_depth(s, open, depth)?;
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            if s.peek().tok == Tok::RParen {
                s.next();
                break;
            }
            let (v, vloc) = self.expr(s, block, depth)?;
            let keyed = s.peek().tok == Tok::Arrow;
            let entry = if keyed {
                s.next();
                let key = match v {
                    Value::Str(k) => k,
                    other => {
                        return Err(ConfigError::at(
                            &vloc,
                            format!("array key must be a string, found {}", other.type_name()),
                        ))
                    }
                };
                if entries.iter().any(|e| e.key.as_ref() == Some(&key)) {
                    return Err(ConfigError::at(&vloc, format!("duplicate array key \"{key}\"")));
                }
                let (value, _) = self.expr(s, block, depth)?;
                Entry { key: Some(key), value }
            } else {
                Entry { key: None, value: v }
            };
            entries.push(entry);
            match s.peek().tok {
                Tok::Comma => {
                    // lighttpd tolerates repeated commas.
                    while s.peek().tok == Tok::Comma {
                        s.next();
                    }
                }
                Tok::RParen => {}
                ref other => {
                    let what = if keyed { "\",\" or \")\"" } else { "\"=>\", \",\" or \")\"" };
                    let msg = format!("expected {what} in array, found {}", other.describe());
                    return Err(s.err(s.peek(), msg));
                }
            }
        }
        let v = Value::Array(entries);
        if weight(&v) > MAX_WEIGHT {
            return Err(s.err(open, "value too large"));
        }
        Ok(v)
    }

    fn string_expr(
        &mut self,
        s: &mut Stream,
        block: usize,
        depth: usize,
        what: &str,
    ) -> Result<(String, Location), ConfigError> {
        let (v, loc) = self.expr(s, block, depth)?;
        match v {
            Value::Str(x) => Ok((x, loc)),
            Value::Int(i) => Ok((i.to_string(), loc)),
            Value::Array(_) => Err(ConfigError::at(&loc, format!("{what} must be a string, found array"))),
        }
    }

    fn condition(&mut self, s: &mut Stream, parent: usize, depth: usize) -> Result<Condition, ConfigError> {
        let dollar = s.expect(Tok::Dollar, "to start a condition")?;
        let st = s.next();
        let scope = match &st.tok {
            Tok::Ident(n) if n.chars().all(|c| c.is_ascii_alphabetic() || c == '_') => n.clone(),
            other => {
                return Err(s.err(
                    &st,
                    format!(
                        "expected a condition field such as HTTP after \"$\", found {}",
                        other.describe()
                    ),
                ))
            }
        };
        s.expect(Tok::LBracket, &format!("after \"${scope}\""))?;
        let (name, _) = self.string_expr(s, parent, depth, "condition field name")?;
        s.expect(Tok::RBracket, "after condition field name")?;
        let field = CondField::from_parts(&scope, &name).ok_or_else(|| {
            s.err(&st, format!("unknown condition field ${scope}[{}]", super::cond::quote(&name)))
        })?;
        let ot = s.next();
        let op = match ot.tok {
            Tok::Eq => CondOp::Eq,
            Tok::Ne => CondOp::Ne,
            Tok::Match => CondOp::Match,
            Tok::NoMatch => CondOp::NotMatch,
            Tok::Prefix => CondOp::Prefix,
            Tok::Suffix => CondOp::Suffix,
            ref other => {
                return Err(s.err(
                    &ot,
                    format!(
                        "expected a condition operator (==, !=, =~, !~, =^ or =$), found {}",
                        other.describe()
                    ),
                ))
            }
        };
        let (pattern, ploc) = self.string_expr(s, parent, depth, "condition pattern")?;
        Condition::new(field, op, pattern, s.loc(&dollar)).map_err(|m| ConfigError::at(&ploc, m))
    }

    /// A condition block and the `else` branches that follow it.
    fn cond_chain(&mut self, s: &mut Stream, parent: usize, depth: usize) -> Result<(), ConfigError> {
        let mut prev: Option<usize> = None;
        let mut start = s.peek().clone();
        loop {
            self.check_depth(s, &start, depth)?;
            let cond =
                if s.peek().tok == Tok::Dollar { Some(self.condition(s, parent, depth)?) } else { None };
            let lb = s.next();
            if lb.tok != Tok::LBrace {
                let what = if prev.is_some() && cond.is_none() {
                    "a condition or \"{\" after \"else\""
                } else {
                    "\"{\" after the condition"
                };
                return Err(s.err(&lb, format!("expected {what}, found {}", lb.tok.describe())));
            }
            let id = self.blocks.len();
            let plain_else = cond.is_none();
            self.blocks.push(Block {
                id,
                parent: Some(parent),
                cond,
                else_of: prev,
                settings: Vec::new(),
                loc: s.loc(&start),
            });
            self.vars.push(Vec::new());
            let open_loc = s.loc(&lb);
            self.statements(s, id, depth + 1, Some(&open_loc))?;
            s.expect(Tok::RBrace, "to close the block")?;
            if plain_else || !is_else(&s.peek().tok) {
                return Ok(());
            }
            prev = Some(id);
            start = s.next();
            if matches!(&s.peek().tok, Tok::Ident(i) if i == "if") && *s.peek2() == Tok::Dollar {
                s.next();
            }
        }
    }

    fn include(&mut self, s: &mut Stream, block: usize, depth: usize) -> Result<(), ConfigError> {
        let (name, loc) = self.string_expr(s, block, depth, "include path")?;
        if !self.opts.includes {
            return Err(ConfigError::at(&loc, "include is disabled"));
        }
        self.check_include_depth(&loc)?;
        let rel = Path::new(&name);
        if name.contains(['*', '?', '[']) {
            let base = if rel.is_absolute() {
                String::new()
            } else {
                format!("{}/", glob::Pattern::escape(&s.dir.to_string_lossy()))
            };
            let pattern = format!("{base}{name}");
            let paths = glob::glob(&pattern).map_err(|e| {
                ConfigError::at(&loc, format!("invalid include pattern \"{name}\": {}", e.msg))
            })?;
            let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
            files.sort();
            for f in files {
                self.include_file(&f, &loc, block, depth)?;
            }
            return Ok(());
        }
        let mut path = s.dir.join(rel);
        // lighttpd resolves relative includes against the main file's
        // directory; try that too so configs written for it keep working.
        if !path.exists() && !rel.is_absolute() {
            let alt = self.main_dir.join(rel);
            if alt.exists() {
                path = alt;
            }
        }
        self.include_file(&path, &loc, block, depth)
    }

    fn check_include_depth(&self, loc: &Location) -> Result<(), ConfigError> {
        if self.include_depth >= self.opts.max_include_depth {
            Err(ConfigError::at(
                loc,
                format!(
                    "includes nested too deeply (limit {}); does a file include itself?",
                    self.opts.max_include_depth
                ),
            ))
        } else {
            Ok(())
        }
    }

    fn include_file(
        &mut self,
        path: &Path,
        loc: &Location,
        block: usize,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let text = read_limited(path).map_err(|e| {
            let msg = if e.kind() == std::io::ErrorKind::NotFound {
                format!("include file not found: \"{}\"", path.display())
            } else {
                format!("cannot read include file \"{}\": {e}", path.display())
            };
            ConfigError::at(loc, msg)
        })?;
        self.files.push(path.to_path_buf());
        self.nested_source(&text, Arc::from(path), dir_of(path), block, depth)
    }

    fn nested_source(
        &mut self,
        text: &str,
        file: Arc<Path>,
        dir: PathBuf,
        block: usize,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let mut sub = Stream { toks: tokenize(text, &file)?, pos: 0, file, dir };
        self.include_depth += 1;
        let r = self.statements(&mut sub, block, depth, None);
        self.include_depth -= 1;
        r
    }

    fn include_shell(&mut self, s: &mut Stream, block: usize, depth: usize) -> Result<(), ConfigError> {
        let (cmd, loc) = self.string_expr(s, block, depth, "include_shell command")?;
        if !self.opts.include_shell {
            return Err(ConfigError::at(&loc, "include_shell is disabled"));
        }
        self.check_include_depth(&loc)?;
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| ConfigError::at(&loc, format!("include_shell \"{cmd}\": cannot run: {e}")))?;
        if !out.status.success() {
            let how = match out.status.code() {
                Some(c) => format!("exited with status {c}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(ConfigError::at(&loc, format!("include_shell \"{cmd}\" {how}")));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let name: Arc<Path> = Arc::from(Path::new(&format!("include_shell \"{cmd}\"")));
        let dir = s.dir.clone();
        self.nested_source(&text, name, dir, block, depth)
    }
}
