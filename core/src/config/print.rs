//! `featherd -p`: the parsed configuration as re-parseable text.

use super::cond::quote;
use super::{Config, Entry, Value};
use std::fmt::Write;

const INDENT: &str = "    ";

pub(crate) fn print(cfg: &Config) -> String {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); cfg.blocks.len()];
    for b in &cfg.blocks {
        if let Some(p) = b.parent.filter(|&p| p < b.id) {
            if let Some(c) = children.get_mut(p) {
                c.push(b.id);
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# {} block(s); variables and includes expanded", cfg.blocks.len());
    if !cfg.blocks.is_empty() {
        block_body(cfg, &children, 0, 0, &mut out);
    }
    out
}

fn block_body(cfg: &Config, children: &[Vec<usize>], id: usize, depth: usize, out: &mut String) {
    let Some(b) = cfg.blocks.get(id) else { return };
    for s in &b.settings {
        indent(out, depth);
        let _ = write!(out, "{} = ", s.key);
        value(&s.value, depth, out);
        out.push('\n');
    }
    for &child in children.get(id).map(Vec::as_slice).unwrap_or(&[]) {
        let Some(c) = cfg.blocks.get(child) else {
            continue;
        };
        if c.else_of.is_some() {
            // Continues the chain on the line of the previous "}".
            out.push_str(" else ");
        } else {
            indent(out, depth);
        }
        match &c.cond {
            Some(cond) => {
                let _ = writeln!(out, "{} {{ # block {}", cond.text, c.id);
            }
            None => {
                let _ = writeln!(out, "{{ # block {}", c.id);
            }
        }
        block_body(cfg, children, child, depth + 1, out);
        indent(out, depth);
        out.push('}');
        let next_is_else = children
            .get(id)
            .and_then(|v| v.iter().find(|&&x| x > child))
            .and_then(|&x| cfg.blocks.get(x))
            .is_some_and(|n| n.else_of == Some(child));
        if !next_is_else {
            out.push('\n');
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

fn is_short(entries: &[Entry]) -> bool {
    entries.len() <= 4
        && entries.iter().all(|e| match &e.value {
            Value::Str(s) => s.len() < 40 && e.key.is_none(),
            Value::Int(_) => e.key.is_none(),
            Value::Array(_) => false,
        })
}

fn value(v: &Value, depth: usize, out: &mut String) {
    match v {
        Value::Str(s) => out.push_str(&quote(s)),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Array(a) if a.is_empty() => out.push_str("( )"),
        Value::Array(a) if is_short(a) => {
            out.push_str("( ");
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value(&e.value, depth, out);
            }
            out.push_str(" )");
        }
        Value::Array(a) => {
            out.push_str("(\n");
            for e in a {
                indent(out, depth + 1);
                if let Some(k) = &e.key {
                    out.push_str(&quote(k));
                    out.push_str(" => ");
                }
                value(&e.value, depth + 1, out);
                out.push_str(",\n");
            }
            indent(out, depth);
            out.push(')');
        }
    }
}
