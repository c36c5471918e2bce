//! The Ansible filters, tests and lookups that deploy playbooks use, on top of minijinja's builtins.

use crate::secrets::Secrets;
use crate::values::value_to_string;
use base64::Engine as _;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};
use regex::Regex;
use std::sync::Arc;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn to_json_value(v: &Value) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| invalid(format!("cannot convert to JSON: {e}")))
}

/// Ansible's truthiness for `| bool`: `yes`, `on`, `1`, `true` (any case) are true.
pub fn ansible_bool(v: &Value) -> bool {
    match v.kind() {
        ValueKind::Bool => v.is_true(),
        ValueKind::Number => v.as_i64().map_or_else(|| v.is_true(), |i| i == 1),
        ValueKind::String => {
            matches!(
                v.as_str().unwrap_or("").trim().to_ascii_lowercase().as_str(),
                "yes" | "on" | "1" | "true" | "y" | "t"
            )
        }
        _ => false,
    }
}

pub fn register(env: &mut Environment<'static>, secrets: Arc<Secrets>) {
    // Python's json.dumps text, as Ansible writes it: `{"a": 1, "b": "\u00e9"}`. A secret with a
    // quote, a backslash or a non-ASCII character is escaped in that text, where the mask would
    // not find it: its escaped form becomes a secret too.
    let json_secrets = secrets.clone();
    let json = move |v: Value, style: super::pyjson::Style| -> Result<String, Error> {
        let value = to_json_value(&v)?;
        let out = super::pyjson::dumps(&value, &style).map_err(|e| invalid(e.to_string()))?;
        if !json_secrets.is_empty() {
            mask_escaped(&value, &style, &json_secrets);
        }
        Ok(out)
    };
    let to_json = json.clone();
    env.add_filter("to_json", move |v: Value, kw: Kwargs| -> Result<String, Error> {
        let style = super::pyjson::Style {
            indent: kw.get::<Option<usize>>("indent")?,
            ensure_ascii: kw.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true),
            sort_keys: kw.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        };
        kw.assert_all_used()?;
        to_json(v, style)
    });
    env.add_filter("to_nice_json", move |v: Value, kw: Kwargs| -> Result<String, Error> {
        let style = super::pyjson::Style {
            indent: Some(kw.get::<Option<usize>>("indent")?.unwrap_or(4)),
            ensure_ascii: kw.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true),
            sort_keys: kw.get::<Option<bool>>("sort_keys")?.unwrap_or(true),
        };
        kw.assert_all_used()?;
        json(v, style)
    });
    env.add_filter("from_json", |s: String| -> Result<Value, Error> {
        let v: serde_json::Value = serde_json::from_str(&s).map_err(|e| invalid(format!("from_json: {e}")))?;
        Ok(crate::values::from_serde(&v))
    });
    let to_yaml = |v: Value| -> Result<String, Error> {
        serde_yaml::to_string(&to_json_value(&v)?).map_err(|e| invalid(e.to_string()))
    };
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_yaml);
    env.add_filter("from_yaml", |s: String| -> Result<Value, Error> {
        let v: serde_json::Value = serde_yaml::from_str(&s).map_err(|e| invalid(format!("from_yaml: {e}")))?;
        Ok(crate::values::from_serde(&v))
    });
    // Ansible's `bool` accepts yes/no/on/off; minijinja's would call every non-empty string true.
    env.add_filter("bool", |v: Value| ansible_bool(&v));
    env.add_filter(
        "regex_replace",
        |s: String, pat: String, rep: Option<String>, kw: Kwargs| -> Result<String, Error> {
            let ignorecase: bool = kw.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
            kw.assert_all_used()?;
            let re = build_regex(&pat, ignorecase)?;
            Ok(re
                .replace_all(&s, python_replacement(&rep.unwrap_or_default()).as_str())
                .into_owned())
        },
    );
    env.add_filter(
        "regex_search",
        |s: String, pat: String, kw: Kwargs| -> Result<Value, Error> {
            let ignorecase: bool = kw.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
            kw.assert_all_used()?;
            let re = build_regex(&pat, ignorecase)?;
            Ok(re.find(&s).map_or(Value::from(()), |m| Value::from(m.as_str())))
        },
    );
    env.add_filter("regex_findall", |s: String, pat: String| -> Result<Value, Error> {
        let re = build_regex(&pat, false)?;
        Ok(Value::from(
            re.find_iter(&s).map(|m| m.as_str().to_string()).collect::<Vec<_>>(),
        ))
    });
    env.add_filter("regex_escape", |s: String| regex::escape(&s));
    // The encoding of a text that holds a secret (a Basic-auth header built from a password)
    // hides the secret from the mask, so it becomes a secret of its own.
    let run_secrets = secrets.clone();
    env.add_filter("b64encode", move |s: String| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        if run_secrets.reveals(&s) {
            run_secrets.add(&encoded);
        }
        encoded
    });
    env.add_filter("b64decode", |s: String| -> Result<String, Error> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim().as_bytes())
            .map_err(|e| invalid(format!("b64decode: {e}")))?;
        String::from_utf8(bytes).map_err(|_| invalid("b64decode: the decoded bytes are not UTF-8"))
    });
    env.add_filter("basename", |s: String| s.rsplit('/').next().unwrap_or("").to_string());
    env.add_filter("dirname", |s: String| match s.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => s[..i].to_string(),
        None => String::new(),
    });
    env.add_filter("dict2items", |v: Value, kw: Kwargs| -> Result<Value, Error> {
        let key_name: String = kw.get::<Option<String>>("key_name")?.unwrap_or_else(|| "key".into());
        let value_name: String = kw
            .get::<Option<String>>("value_name")?
            .unwrap_or_else(|| "value".into());
        kw.assert_all_used()?;
        if v.kind() != ValueKind::Map {
            return Err(invalid(format!("dict2items expects a mapping, got {}", v.kind())));
        }
        let mut out = Vec::new();
        for k in v.try_iter()? {
            let val = v.get_item(&k)?;
            out.push(Value::from_pairs([(key_name.clone(), k), (value_name.clone(), val)]));
        }
        Ok(Value::from(out))
    });
    env.add_filter("items2dict", |v: Value, kw: Kwargs| -> Result<Value, Error> {
        let key_name: String = kw.get::<Option<String>>("key_name")?.unwrap_or_else(|| "key".into());
        let value_name: String = kw
            .get::<Option<String>>("value_name")?
            .unwrap_or_else(|| "value".into());
        kw.assert_all_used()?;
        let mut pairs = Vec::new();
        for item in v.try_iter()? {
            let k = item.get_attr(&key_name)?;
            let val = item.get_attr(&value_name)?;
            if k.is_undefined() {
                return Err(invalid(format!("items2dict: an item has no `{key_name}`")));
            }
            pairs.push((k.to_string(), val));
        }
        Ok(Value::from_pairs(pairs))
    });
    env.add_filter("quote", |s: Value| crate::shell::quote(&s.to_string()));
    env.add_filter(
        "ternary",
        |v: Value, yes: Value, no: Value| if v.is_true() { yes } else { no },
    );
    env.add_filter(
        "combine",
        |base: Value, rest: minijinja::value::Rest<minijinja::value::ValueOrKwargs>| -> Result<Value, Error> {
            let mut values = rest.into_values();
            let kwargs = match values.last() {
                Some(v) if v.is_kwargs() => values.pop().and_then(|v| Kwargs::try_from(v).ok()),
                _ => None,
            };
            let recursive = kwargs
                .as_ref()
                .and_then(|k| k.get::<Option<bool>>("recursive").ok().flatten())
                .unwrap_or(false);
            let list_merge = kwargs
                .as_ref()
                .and_then(|k| k.get::<Option<String>>("list_merge").ok().flatten())
                .unwrap_or_else(|| "replace".into());
            if let Some(k) = &kwargs {
                k.assert_all_used()?;
            }
            if !matches!(
                list_merge.as_str(),
                "replace" | "keep" | "append" | "prepend" | "append_rp" | "prepend_rp"
            ) {
                return Err(invalid(format!("combine: `list_merge` cannot be `{list_merge}`")));
            }
            // `[a, b] | combine` combines the mappings of the list.
            let mut all: Vec<Value> = Vec::new();
            for m in std::iter::once(base).chain(values) {
                if m.kind() == ValueKind::Seq {
                    all.extend(m.try_iter()?);
                } else {
                    all.push(m);
                }
            }
            let mut acc = Value::from_pairs(Vec::<(Value, Value)>::new());
            for m in all {
                if m.kind() != ValueKind::Map {
                    return Err(invalid(format!("combine expects mappings, got {}", m.kind())));
                }
                acc = merge_hash(&acc, &m, recursive, &list_merge)?;
            }
            Ok(acc)
        },
    );
    env.add_filter("flatten", |v: Value| -> Result<Value, Error> {
        fn walk(v: Value, out: &mut Vec<Value>) -> Result<(), Error> {
            if v.kind() == ValueKind::Seq {
                for i in v.try_iter()? {
                    walk(i, out)?;
                }
            } else {
                out.push(v);
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(v, &mut out)?;
        Ok(Value::from(out))
    });
    // Ansible's `mandatory(msg)`: the message says what to give instead.
    env.add_filter("mandatory", |v: Value, msg: Option<String>| -> Result<Value, Error> {
        if v.is_undefined() {
            let msg = msg.unwrap_or_else(|| "mandatory variable not defined".into());
            Err(Error::new(ErrorKind::UndefinedError, msg))
        } else {
            Ok(v)
        }
    });

    for (name, field, want) in [
        ("succeeded", "failed", false),
        ("success", "failed", false),
        ("failed", "failed", true),
        ("failure", "failed", true),
        ("changed", "changed", true),
        ("change", "changed", true),
        ("skipped", "skipped", true),
        ("skip", "skipped", true),
    ] {
        env.add_test(name, move |v: Value| -> Result<bool, Error> {
            if v.kind() != ValueKind::Map {
                return Err(invalid(format!("the `{name}` test expects a registered task result")));
            }
            Ok(v.get_attr(field)?.is_true() == want)
        });
    }
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_filter("version_compare", version_test);
    // Path tests, on the controller (as Ansible's: they test the controller's file system).
    env.add_test("abs", |p: String| std::path::Path::new(&p).is_absolute());
    env.add_test("exists", |p: String| std::path::Path::new(&p).exists());
    env.add_test("file", |p: String| std::path::Path::new(&p).is_file());
    env.add_test("directory", |p: String| std::path::Path::new(&p).is_dir());
    env.add_test("link", |p: String| std::path::Path::new(&p).is_symlink());
    env.add_test("match", |s: String, pat: String| -> Result<bool, Error> {
        Ok(build_regex(&format!("^(?:{pat})"), false)?.is_match(&s))
    });
    env.add_test("search", |s: String, pat: String| -> Result<bool, Error> {
        Ok(build_regex(&pat, false)?.is_match(&s))
    });
    env.add_test("regex", |s: String, pat: String| -> Result<bool, Error> {
        Ok(build_regex(&pat, false)?.is_match(&s))
    });
}

/// Every string of `value` that holds a secret, as JSON text writes it (without its quotes),
/// becomes a secret.
fn mask_escaped(value: &serde_json::Value, style: &super::pyjson::Style, secrets: &Secrets) {
    match value {
        serde_json::Value::String(s) if secrets.reveals(s) => {
            if let Ok(text) = super::pyjson::dumps(value, style) {
                secrets.add(&text[1..text.len() - 1]);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| mask_escaped(v, style, secrets)),
        serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| {
            mask_escaped(&serde_json::Value::String(k.clone()), style, secrets);
            mask_escaped(v, style, secrets);
        }),
        _ => {}
    }
}

/// One part of a loose version (`1.10a` is 1, 10, `a`), as Python's LooseVersion splits it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Num(u64),
    Text(String),
}

fn loose(v: &str) -> Vec<Part> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<Part>| {
        if cur.is_empty() {
            return;
        }
        let p = std::mem::take(cur);
        out.push(match p.parse::<u64>() {
            Ok(n) => Part::Num(n),
            Err(_) => Part::Text(p),
        });
    };
    for c in v.chars() {
        let digit = c.is_ascii_digit();
        if c == '.' || (!cur.is_empty() && cur.chars().all(|x| x.is_ascii_digit()) != digit) {
            flush(&mut cur, &mut out);
        }
        if c != '.' {
            cur.push(c);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// `version('2.19', '>=')`: Ansible's loose comparison of versions, with its operators.
fn version_test(value: Value, other: Value, op: Option<String>) -> Result<bool, Error> {
    let (a, b) = (loose(&value_to_string(&value)), loose(&value_to_string(&other)));
    // Python refuses to order a number and a word (`1.a` against `1.2`).
    for (x, y) in a.iter().zip(&b) {
        if std::mem::discriminant(x) != std::mem::discriminant(y) {
            return Err(invalid(format!(
                "version comparison failed: cannot compare `{value}` with `{other}`"
            )));
        }
    }
    let ord = a.cmp(&b);
    use std::cmp::Ordering::*;
    Ok(match op.as_deref().unwrap_or("eq") {
        "==" | "=" | "eq" => ord == Equal,
        "!=" | "<>" | "ne" => ord != Equal,
        "<" | "lt" => ord == Less,
        "<=" | "le" => ord != Greater,
        ">" | "gt" => ord == Greater,
        ">=" | "ge" => ord != Less,
        other => return Err(invalid(format!("invalid operator `{other}` for the version test"))),
    })
}

/// Ansible's `merge_hash`: `y` over `x`, mappings merged key by key when `recursive`, lists
/// by `list_merge` (replace, keep, append, prepend, append_rp, prepend_rp).
fn merge_hash(x: &Value, y: &Value, recursive: bool, list_merge: &str) -> Result<Value, Error> {
    let mut map: indexmap::IndexMap<String, (Value, Value)> = indexmap::IndexMap::new();
    for k in x.try_iter()? {
        map.insert(k.to_string(), (k.clone(), x.get_item(&k)?));
    }
    for k in y.try_iter()? {
        let new = y.get_item(&k)?;
        let merged = match map.get(&k.to_string()) {
            Some((_, old)) if recursive && old.kind() == ValueKind::Map && new.kind() == ValueKind::Map => {
                merge_hash(old, &new, recursive, list_merge)?
            }
            Some((_, old)) if old.kind() == ValueKind::Seq && new.kind() == ValueKind::Seq => {
                let (o, n): (Vec<Value>, Vec<Value>) = (old.try_iter()?.collect(), new.try_iter()?.collect());
                let without =
                    |a: &[Value], b: &[Value]| a.iter().filter(|v| !b.contains(v)).cloned().collect::<Vec<_>>();
                Value::from(match list_merge {
                    "keep" => o,
                    "append" => [o, n].concat(),
                    "prepend" => [n, o].concat(),
                    "append_rp" => [without(&o, &n), n].concat(),
                    "prepend_rp" => {
                        let rest = without(&o, &n);
                        [n, rest].concat()
                    }
                    _ => n,
                })
            }
            _ => new,
        };
        map.insert(k.to_string(), (k, merged));
    }
    Ok(Value::from_pairs(map.into_values().collect::<Vec<_>>()))
}

fn build_regex(pat: &str, ignorecase: bool) -> Result<Regex, Error> {
    regex::RegexBuilder::new(pat)
        .case_insensitive(ignorecase)
        .build()
        .map_err(|e| invalid(format!("invalid regular expression `{pat}`: {e}")))
}

/// Python's `\1` and `\g<name>` replacement syntax to the regex crate's `${1}` / `${name}`.
fn python_replacement(rep: &str) -> String {
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('g') => {
                    chars.next();
                    if chars.peek() == Some(&'<') {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::python_replacement;

    #[test]
    fn python_backrefs_translate() {
        assert_eq!(python_replacement(r"\1-\g<name>$"), "${1}-${name}$$");
    }
}
