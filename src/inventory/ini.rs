//! Ansible's INI inventory format: `[group]`, `[group:vars]`, `[group:children]`, host lines with
//! `key=value` variables, `host:port` and ranges.

use super::{Builder, ini_value, range};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};
use minijinja::Value;

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

pub(super) fn parse(sources: &Sources, file: FileId, b: &mut Builder) {
    let src = sources.get(file);
    let mut section = Section::Hosts("ungrouped".into());
    let mut vars_sections: Vec<(String, Span)> = Vec::new();
    // `[g:vars]` may come before `[g]`; the values apply once the whole file is read.
    let mut pending_vars: Vec<(String, String, Value)> = Vec::new();
    let mut offset = 0;
    for raw_line in src.text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let at = |start: usize, len: usize| {
            Span::new(
                file,
                line_start + indent + start,
                line_start + indent + start + len.max(1),
            )
        };
        if trimmed.starts_with('[') {
            let Some(close) = trimmed.find(']') else {
                b.diags.push(
                    Diagnostic::at("section header is missing its closing `]`", at(0, trimmed.len()))
                        .with_help("write a section as `[group]`, `[group:vars]` or `[group:children]`"),
                );
                continue;
            };
            let rest = trimmed[close + 1..].trim();
            if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with(';') {
                b.diags.push(Diagnostic::at(
                    "unexpected text after section header",
                    at(close + 1, trimmed.len() - close - 1),
                ));
            }
            let inner = &trimmed[1..close];
            let (name, kind) = match inner.split_once(':') {
                None => (inner, None),
                Some((n, k)) => (n, Some(k)),
            };
            let name_span = at(1, name.len());
            if name.is_empty() || name.contains(char::is_whitespace) {
                b.diags.push(
                    Diagnostic::at(format!("invalid group name `{name}`"), name_span)
                        .with_help("group names are letters, digits, `_` and `-`, without spaces"),
                );
                continue;
            }
            section = match kind {
                None => {
                    b.group(name, Some(name_span));
                    Section::Hosts(name.to_string())
                }
                Some("vars") => {
                    vars_sections.push((name.to_string(), name_span));
                    Section::Vars(name.to_string())
                }
                Some("children") => {
                    b.group(name, Some(name_span));
                    Section::Children(name.to_string())
                }
                Some(other) => {
                    let kind_span = at(1 + name.len() + 1, other.len());
                    b.diags.push(
                        Diagnostic::at(format!("unknown section type `{other}`"), kind_span)
                            .suggest(other, ["vars", "children"])
                            .or_help("a section is `[group]`, `[group:vars]` or `[group:children]`"),
                    );
                    continue;
                }
            };
            continue;
        }
        match &section {
            Section::Vars(group) => {
                let Some((k, v)) = trimmed.split_once('=') else {
                    b.diags.push(
                        Diagnostic::at("expected `key=value` in a `:vars` section", at(0, trimmed.len())).with_help(
                            format!("variables of group `{group}` are written `name=value`, one per line"),
                        ),
                    );
                    continue;
                };
                let key = k.trim();
                if !valid_var_name(key) {
                    b.diags.push(invalid_var_name(key, at(0, k.len())));
                    continue;
                }
                pending_vars.push((group.clone(), key.to_string(), ini_value(strip_comment(v))));
            }
            Section::Children(group) => {
                let child = strip_comment(trimmed).trim();
                if child.contains(char::is_whitespace) || child.contains('=') {
                    b.diags.push(
                        Diagnostic::at(
                            format!("expected a group name in `[{group}:children]`, found `{child}`"),
                            at(0, trimmed.len()),
                        )
                        .with_help("list one child group per line; hosts belong in `[group]` sections"),
                    );
                    continue;
                }
                b.add_child(group, child, Some(at(0, child.len())));
            }
            Section::Hosts(group) => {
                let tokens = match split_tokens(trimmed) {
                    Ok(t) => t,
                    Err(col) => {
                        b.diags.push(
                            Diagnostic::at("unterminated quote in host line", at(col, 1))
                                .with_help("close the quote, or escape it with a backslash"),
                        );
                        continue;
                    }
                };
                let Some((host_tok, host_col)) = tokens.first().cloned() else {
                    continue;
                };
                let host_span = at(host_col, host_tok.len());
                let (pattern, port) = split_port(&host_tok);
                let port = match port {
                    None => None,
                    Some(p) => match crate::values::parse_port(p) {
                        Ok(p) => Some(p),
                        Err(_) => {
                            b.diags.push(
                                Diagnostic::at(format!("invalid port `{p}` for host `{pattern}`"), host_span)
                                    .with_help("a port is a number from 1 to 65535, as in `web1:2222`"),
                            );
                            continue;
                        }
                    },
                };
                let mut vars: Vec<(String, Value)> = Vec::new();
                let mut ok = true;
                for (tok, col) in &tokens[1..] {
                    let Some((k, v)) = tok.split_once('=') else {
                        b.diags.push(
                            Diagnostic::at(
                                format!("expected `key=value` after the host name, found `{tok}`"),
                                at(*col, tok.len()),
                            )
                            .with_help("host variables are written `name=value`; one host per line"),
                        );
                        ok = false;
                        continue;
                    };
                    if !valid_var_name(k) {
                        b.diags.push(invalid_var_name(k, at(*col, k.len())));
                        ok = false;
                        continue;
                    }
                    vars.push((k.to_string(), ini_value(v)));
                }
                if !ok {
                    continue;
                }
                if let Some(p) = port {
                    vars.push(("ansible_port".into(), Value::from(p)));
                }
                match range::expand(pattern) {
                    Ok(names) => {
                        for n in names {
                            b.add_host(&n, Some(host_span), group, vars.clone());
                        }
                    }
                    Err(msg) => b.diags.push(
                        Diagnostic::at(format!("invalid host range in `{pattern}`: {msg}"), host_span)
                            .with_help("ranges look like `app[01:20]` or `db-[a:f]`"),
                    ),
                }
            }
        }
    }
    for (group, key, value) in pending_vars {
        if b.groups.contains_key(&group) {
            b.group(&group, None).vars.insert(key, value);
        }
    }
    for (name, span) in vars_sections {
        if !b.groups.contains_key(&name) {
            b.diags.push(
                Diagnostic::at(
                    format!("section `[{name}:vars]` is for a group that is not defined"),
                    span,
                )
                .with_help(format!(
                    "define the group with a `[{name}]` or `[{name}:children]` section"
                )),
            );
        }
    }
}

fn strip_comment(s: &str) -> &str {
    match s.find(" #").or_else(|| s.find("\t#")) {
        Some(i) if !s[..i].contains(['"', '\'']) => s[..i].trim(),
        _ => s.trim(),
    }
}

pub fn valid_var_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn invalid_var_name(k: &str, span: Span) -> Diagnostic {
    Diagnostic::at(format!("invalid variable name `{k}`"), span)
        .with_help("variable names start with a letter or `_` and hold only letters, digits and `_`")
}

/// `host:port`, keeping IPv6 addresses and ranges like `a[1:3]` intact.
fn split_port(tok: &str) -> (&str, Option<&str>) {
    if tok.matches(':').count() > 1 && !tok.contains('[') {
        return (tok, None); // a bare IPv6 address
    }
    match tok.rfind(':') {
        Some(i) if !tok[i..].contains(']') => (&tok[..i], Some(&tok[i + 1..])),
        _ => (tok, None),
    }
}

/// Split a host line like shlex: whitespace separates tokens, quotes group, `#` starts a comment.
/// Returns each token and its byte column; on an unterminated quote, the column of the quote.
fn split_tokens(line: &str) -> Result<Vec<(String, usize)>, usize> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = None;
    let mut quote: Option<(char, usize)> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some((q, _)), c) if c == q => quote = None,
            (Some(_), '\\') => {
                if let Some((_, n)) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                start.get_or_insert(i);
                quote = Some((c, i));
            }
            (None, '#') if start.is_none() => break,
            (None, c) if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    out.push((std::mem::take(&mut cur), s));
                }
            }
            (None, c) => {
                start.get_or_insert(i);
                cur.push(c);
            }
        }
    }
    if let Some((_, col)) = quote {
        return Err(col);
    }
    if let Some(s) = start {
        out.push((cur, s));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_respect_quotes_and_comments() {
        let t = split_tokens(r#"web1 a=1 msg="hello world" # note"#).unwrap();
        let words: Vec<&str> = t.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(words, ["web1", "a=1", "msg=hello world"]);
        assert_eq!(t[2].1, 9);
        assert_eq!(split_tokens("h a='x").unwrap_err(), 4);
    }

    #[test]
    fn ports_and_ipv6() {
        assert_eq!(split_port("web1:2222"), ("web1", Some("2222")));
        assert_eq!(split_port("app[1:3]"), ("app[1:3]", None));
        assert_eq!(split_port("app[1:3]:22"), ("app[1:3]", Some("22")));
        assert_eq!(split_port("fe80::1"), ("fe80::1", None));
    }
}
