//! Values shared by the inventory, variables, modules and reports: the variable map, and how a
//! template value is built from serde data, recognised as a template, and shown as text.

use indexmap::IndexMap;
use minijinja::Value;
use minijinja::value::ValueKind;

/// Variables by name, in the order they were defined.
pub type VarMap = IndexMap<String, Value>;

/// Any serde value as a template value.
pub fn from_serde<T: serde::Serialize>(v: &T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// True if a string holds template syntax and must be rendered before use.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// How a value reads in a command line or message: strings bare, `None` empty, the rest as JSON.
pub fn value_to_string(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or("").to_string(),
        ValueKind::None | ValueKind::Undefined => String::new(),
        ValueKind::Bool => {
            if v.is_true() {
                "True".into()
            } else {
                "False".into()
            }
        }
        ValueKind::Seq | ValueKind::Map => serde_json::to_string(v).unwrap_or_else(|_| v.to_string()),
        _ => v.to_string(),
    }
}

/// A TCP port, 1 to 65535, written as text (`"22"`): the one parser for `host:port`,
/// `ansible_port` and every module's port.
pub fn parse_port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| format!("`{s}` is not a port (an integer from 1 to 65535)"))
}

/// A port given as a variable's value: an integer or its text.
pub fn port_value(v: &Value) -> Result<u16, String> {
    match v.kind() {
        ValueKind::Number => match i64::try_from(v.clone()) {
            Ok(n) => u16::try_from(n)
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| format!("`{n}` is not a port (an integer from 1 to 65535)")),
            Err(_) => Err(format!("`{v}` is not a port (an integer from 1 to 65535)")),
        },
        _ => parse_port(&value_to_string(v)),
    }
}

/// The deepest a template expression may nest: operators, attribute and index lookups, calls,
/// filters and brackets, counted along one chain (a comma or a colon starts a new one). Real
/// templates stay under 30; minijinja's parser and compiler recurse once per level, and tens
/// of thousands of levels overflow any stack, so past this the text is refused before minijinja
/// sees it. The run's threads have stacks sized for this many (`commands::play`).
pub const MAX_EXPR_DEPTH: usize = 1_000;

/// The byte offset where an expression (`expression`: the whole text, as in `when:`) or a
/// template's `{{ }}` and `{% %}` tags first nest deeper than [`MAX_EXPR_DEPTH`]; `None` if they
/// never do. An upper bound of the depth of minijinja's syntax tree, computed in one pass.
pub fn too_deep(src: &str, expression: bool) -> Option<usize> {
    let b = src.as_bytes();
    if expression {
        return scan_expr(b, 0, false).err();
    }
    let mut i = 0;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'{', b'{') | (b'{', b'%') => {
                let block = b[i + 1] == b'%';
                let start = i + 2;
                if block && is_raw(&b[start..]) {
                    // The text of a raw block is not parsed: skip to its `endraw`.
                    i = find(b, start, b"endraw").map_or(b.len(), |e| e + 6);
                    continue;
                }
                match scan_expr(b, start, true) {
                    Ok(end) => i = end,
                    Err(at) => return Some(at),
                }
            }
            (b'{', b'#') => i = find(b, i + 2, b"#}").map_or(b.len(), |e| e + 2),
            _ => i += 1,
        }
    }
    None
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn is_raw(tag: &[u8]) -> bool {
    let t = tag
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'-' | b'+'));
    t.is_some_and(|t| {
        tag[t..].starts_with(b"raw")
            && tag
                .get(t + 3)
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
    })
}

/// Scan one expression from `from`: `Ok(end)` (past the closing `}}`/`%}` in a tag, or the end
/// of the text), or `Err(offset)` where it nests too deeply.
fn scan_expr(b: &[u8], from: usize, in_tag: bool) -> Result<usize, usize> {
    // `outer`: the levels of the enclosing chains and brackets; `cur`: this chain's so far.
    let mut stack: Vec<(usize, u8)> = Vec::new();
    let mut outer = 0usize;
    let mut cur = 0usize;
    let mut i = from;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            b'}' | b'%' | b'-' | b'+' if in_tag && stack.iter().all(|(_, open)| *open != b'{') && closes_tag(b, i) => {
                return Ok(tag_end(b, i));
            }
            b'(' | b'[' | b'{' => {
                cur += 1;
                outer += cur;
                stack.push((cur, c));
                cur = 0;
            }
            b')' | b']' | b'}' => {
                if let Some((c, _)) = stack.pop() {
                    outer -= c;
                    cur = c;
                }
            }
            b',' | b':' => cur = 0,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'~' | b'.' | b'|' | b'<' | b'>' | b'=' | b'!' => cur += 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if matches!(&b[start..i], b"not" | b"and" | b"or" | b"is" | b"in" | b"if" | b"else") {
                    cur += 1;
                }
                if outer + cur > MAX_EXPR_DEPTH {
                    return Err(start);
                }
                continue;
            }
            _ => {}
        }
        if outer + cur > MAX_EXPR_DEPTH {
            return Err(i);
        }
        i += 1;
    }
    Ok(b.len())
}

/// True if a tag closes at `i`: `}}`, `%}`, or either after a `-`/`+` whitespace control.
fn closes_tag(b: &[u8], i: usize) -> bool {
    let j = if matches!(b[i], b'-' | b'+') { i + 1 } else { i };
    matches!(b.get(j..j + 2), Some(b"}}") | Some(b"%}"))
}

fn tag_end(b: &[u8], i: usize) -> usize {
    let j = if matches!(b[i], b'-' | b'+') { i + 1 } else { i };
    (j + 2).min(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_1_to_65535() {
        assert_eq!(parse_port(" 22 "), Ok(22));
        assert_eq!(port_value(&Value::from(8080)), Ok(8080));
        assert_eq!(port_value(&Value::from("443")), Ok(443));
        for bad in ["0", "65536", "70000", "22abc", "-1", "", "2.5"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        assert!(port_value(&Value::from(70000)).is_err());
        assert!(port_value(&Value::from(2.5)).is_err());
    }

    #[test]
    fn nesting_past_the_limit_is_found_and_real_templates_pass() {
        let n = MAX_EXPR_DEPTH + 1;
        for deep in [
            format!("{{{{ {}1 }}}}", "- ".repeat(n)),
            format!("{{{{ {}1 }}}}", "-".repeat(n)),
            format!("{{% if {}x %}}{{% endif %}}", "not ".repeat(n)),
            format!("{{{{ {}1 }}}}", "1 + ".repeat(n)),
            format!("{{{{ x{} }}}}", "[0]".repeat(n)),
            format!("{{{{ x{} }}}}", ".a".repeat(n)),
            format!("{{{{ {}{} }}}}", "[".repeat(n), "]".repeat(n)),
            format!("a {{{{ 1 }}}} b {{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n)),
        ] {
            assert!(too_deep(&deep, false).is_some(), "{}", &deep[..40]);
        }
        assert!(too_deep(&format!("x{}", " or x".repeat(n)), true).is_some());
        for fine in [
            "{{ a.b[0] | default('x') ~ (c + 1) * 2 }}",
            "{% for h in groups['app'] %}{{ hostvars[h].ansible_host }}:{{ port }}\n{% endfor %}",
            "{% raw %}{{ ((((( {% endraw %}",
            "{# ((((((((( #}",
            "{{ {'a': {'b': 1}} }}",
            "'{{' text }}",
        ] {
            assert_eq!(too_deep(fine, false), None, "{fine}");
        }
        let wide = format!("{{{{ [{}] }}}}", "x.a.b, ".repeat(10_000));
        assert_eq!(too_deep(&wide, false), None);
        let in_raw = format!("{{% raw %}}{}{{% endraw %}}", "- ".repeat(n));
        assert_eq!(too_deep(&in_raw, false), None);
    }
}
