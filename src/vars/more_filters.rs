//! Ansible's list, path, size, URL, hash and YAML filters and its set and truth tests, as
//! ansible-core 2.19 answers them (the table in tests/lookups/cases.yml).

use crate::secrets::Secrets;
use crate::values::value_to_string;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};
use std::sync::Arc;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// A filter's list argument: a list, a mapping's keys, or a string's characters, as Python
/// iterates them.
pub(crate) fn list(v: &Value, what: &str) -> Result<Vec<Value>, Error> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => Ok(v.try_iter()?.collect()),
        ValueKind::String => Ok(v
            .as_str()
            .unwrap_or("")
            .chars()
            .map(|c| Value::from(c.to_string()))
            .collect()),
        other => Err(invalid(format!("`{what}` expects lists, got {other}"))),
    }
}

pub fn register(env: &mut Environment<'static>, secrets: Arc<Secrets>) {
    env.add_filter("product", |first: Value, rest: Rest<Value>| -> Result<Value, Error> {
        let mut out: Vec<Vec<Value>> = vec![Vec::new()];
        for l in std::iter::once(&first).chain(rest.iter()) {
            let items = list(l, "product")?;
            let mut next = Vec::new();
            for prefix in &out {
                for x in &items {
                    let mut row = prefix.clone();
                    row.push(x.clone());
                    next.push(row);
                }
            }
            if next.len() > 1_000_000 {
                return Err(invalid("`product` makes more than a million combinations"));
            }
            out = next;
        }
        Ok(Value::from(out.into_iter().map(Value::from).collect::<Vec<_>>()))
    });
    env.add_filter("zip", |first: Value, rest: Rest<Value>| -> Result<Value, Error> {
        let lists: Vec<Vec<Value>> = std::iter::once(&first)
            .chain(rest.iter())
            .map(|l| list(l, "zip"))
            .collect::<Result<_, _>>()?;
        let n = lists.iter().map(Vec::len).min().unwrap_or(0);
        Ok(Value::from(
            (0..n)
                .map(|i| Value::from(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>()))
                .collect::<Vec<_>>(),
        ))
    });
    env.add_filter(
        "zip_longest",
        |first: Value, rest: Rest<Value>, kwargs: Kwargs| -> Result<Value, Error> {
            let fill: Option<Value> = kwargs.get("fillvalue")?;
            kwargs.assert_all_used()?;
            let fill = fill.unwrap_or(Value::from(()));
            let lists: Vec<Vec<Value>> = std::iter::once(&first)
                .chain(rest.iter())
                .map(|l| list(l, "zip_longest"))
                .collect::<Result<_, _>>()?;
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            Ok(Value::from(
                (0..n)
                    .map(|i| {
                        Value::from(
                            lists
                                .iter()
                                .map(|l| l.get(i).cloned().unwrap_or(fill.clone()))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect::<Vec<_>>(),
            ))
        },
    );
    env.add_filter("splitext", |p: String| -> Value {
        let (root, ext) = splitext(&p);
        Value::from(vec![Value::from(root), Value::from(ext)])
    });
    env.add_filter("path_join", |parts: Value| -> Result<String, Error> {
        let parts: Vec<String> = match parts.kind() {
            ValueKind::String => vec![value_to_string(&parts)],
            _ => list(&parts, "path_join")?.iter().map(value_to_string).collect(),
        };
        let mut out = String::new();
        for p in parts {
            if p.starts_with('/') || out.is_empty() {
                out = p;
            } else if out.ends_with('/') {
                out.push_str(&p);
            } else {
                out.push('/');
                out.push_str(&p);
            }
        }
        Ok(out)
    });
    env.add_filter("expanduser", |p: String| -> String {
        match (p.strip_prefix('~'), std::env::var("HOME")) {
            (Some(rest), Ok(home)) if rest.is_empty() || rest.starts_with('/') => format!("{home}{rest}"),
            _ => p,
        }
    });
    env.add_filter("realpath", |p: String| -> String {
        // Python's realpath does not fail on a path that does not exist.
        std::fs::canonicalize(&p)
            .or_else(|_| std::path::absolute(&p))
            .map(|c| c.display().to_string())
            .unwrap_or(p)
    });
    env.add_filter("type_debug", |v: Value| -> &'static str {
        match v.kind() {
            ValueKind::String => "str",
            ValueKind::Bool => "bool",
            ValueKind::Number if v.is_integer() => "int",
            ValueKind::Number => "float",
            ValueKind::Seq => "list",
            ValueKind::Map => "dict",
            ValueKind::None => "NoneType",
            _ => "object",
        }
    });
    env.add_filter("human_to_bytes", |v: Value, kwargs: Kwargs| -> Result<i64, Error> {
        let isbits: bool = kwargs.get::<Option<bool>>("isbits")?.unwrap_or(false);
        let default_unit: Option<String> = kwargs.get("default_unit")?;
        kwargs.assert_all_used()?;
        human_to_bytes(&value_to_string(&v), default_unit.as_deref(), isbits)
    });
    env.add_filter("human_readable", |v: Value, kwargs: Kwargs| -> Result<String, Error> {
        let isbits: bool = kwargs.get::<Option<bool>>("isbits")?.unwrap_or(false);
        let unit: Option<String> = kwargs.get("unit")?;
        kwargs.assert_all_used()?;
        let n: f64 = match v.kind() {
            ValueKind::Number => f64::try_from(v.clone()).unwrap_or(0.0),
            _ => value_to_string(&v)
                .trim()
                .parse()
                .map_err(|_| invalid(format!("human_readable() can't interpret `{v}`")))?,
        };
        Ok(human_readable(n, isbits, unit.as_deref()))
    });
    env.add_filter(
        "comment",
        |text: String, style: Option<String>, kwargs: Kwargs| -> Result<String, Error> {
            let style: Option<String> = match style {
                Some(s) => Some(s),
                None => kwargs.get("style")?,
            };
            let decoration: Option<String> = kwargs.get("decoration")?;
            kwargs.assert_all_used()?;
            let (begin, prefix, end) = match style.as_deref().unwrap_or("plain") {
                "plain" => ("", "# ", ""),
                "erlang" => ("", "% ", ""),
                "c" => ("", "// ", ""),
                "cblock" => ("/*", " * ", " */"),
                "xml" => ("<!--", " - ", "-->"),
                other => return Err(invalid(format!("unknown comment style `{other}`"))),
            };
            let prefix = decoration.as_deref().unwrap_or(prefix);
            let bare = prefix.trim_end();
            let mut lines = Vec::new();
            if !begin.is_empty() {
                lines.push(begin.to_string());
            }
            lines.push(bare.to_string());
            for l in text.split('\n') {
                lines.push(if l.is_empty() {
                    bare.to_string()
                } else {
                    format!("{prefix}{l}")
                });
            }
            lines.push(bare.to_string());
            if !end.is_empty() {
                lines.push(end.to_string());
            }
            Ok(lines.join("\n"))
        },
    );
    env.add_filter(
        "urlsplit",
        |url: String, part: Option<String>| -> Result<Value, Error> {
            let parts = urlsplit(&url);
            match part {
                None => Ok(Value::from_pairs(parts)),
                Some(p) => parts
                    .into_iter()
                    .find(|(k, _)| *k == p)
                    .map(|(_, v)| v)
                    .ok_or_else(|| invalid(format!("unknown URL component `{p}`"))),
            }
        },
    );
    env.add_filter(
        "extract",
        |key: Value, container: Value, morekeys: Option<Value>| -> Result<Value, Error> {
            let mut v = container.get_item(&key)?;
            if v.is_undefined() {
                return Err(Error::new(
                    ErrorKind::UndefinedError,
                    format!("no item `{key}` to extract"),
                ));
            }
            if let Some(more) = morekeys {
                let keys: Vec<Value> = match more.kind() {
                    ValueKind::Seq => more.try_iter()?.collect(),
                    _ => vec![more],
                };
                for k in keys {
                    v = v.get_item(&k)?;
                }
            }
            Ok(v)
        },
    );
    // The digest of a secret stays a secret (a token's hash can be the credential itself).
    let run_secrets = secrets.clone();
    env.add_filter("hash", move |v: Value, algo: Option<String>| -> Result<String, Error> {
        let text = value_to_string(&v);
        let out = hash(text.as_bytes(), algo.as_deref().unwrap_or("sha1"))?;
        if run_secrets.reveals(&text) {
            run_secrets.add(&out);
        }
        Ok(out)
    });
    // `md5` and `sha1`: ansible-core's shorthands for `hash('md5')` and `hash('sha1')`.
    for algo in ["md5", "sha1"] {
        let secrets = secrets.clone();
        env.add_filter(algo, move |v: Value| -> Result<String, Error> {
            let text = value_to_string(&v);
            let out = hash(text.as_bytes(), algo)?;
            if secrets.reveals(&text) {
                secrets.add(&out);
            }
            Ok(out)
        });
    }
    env.add_filter("checksum", move |v: Value| -> Result<String, Error> {
        let text = value_to_string(&v);
        let out = hash(text.as_bytes(), "sha1")?;
        if secrets.reveals(&text) {
            secrets.add(&out);
        }
        Ok(out)
    });
    env.add_filter("from_yaml_all", |s: String| -> Result<Value, Error> {
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(&s) {
            let v: serde_json::Value =
                serde::Deserialize::deserialize(doc).map_err(|e| invalid(format!("from_yaml_all: {e}")))?;
            out.push(crate::values::from_serde(&v));
        }
        Ok(Value::from(out))
    });

    env.add_test("truthy", |v: Value| v.is_true());
    env.add_test("falsy", |v: Value| !v.is_true());
    env.add_test("subset", |a: Value, b: Value| -> Result<bool, Error> {
        let b = list(&b, "subset")?;
        Ok(list(&a, "subset")?.iter().all(|x| b.contains(x)))
    });
    env.add_test("superset", |a: Value, b: Value| -> Result<bool, Error> {
        let a = list(&a, "superset")?;
        Ok(list(&b, "superset")?.iter().all(|x| a.contains(x)))
    });
    env.add_test("contains", |seq: Value, x: Value| -> Result<bool, Error> {
        Ok(list(&seq, "contains")?.contains(&x))
    });
}

/// Python's `os.path.splitext`: the extension from the last dot of the last component, leading
/// dots (`.bashrc`) not counting.
fn splitext(p: &str) -> (String, String) {
    let base_start = p.rfind('/').map_or(0, |i| i + 1);
    let base = &p[base_start..];
    let lead = base.len() - base.trim_start_matches('.').len();
    match base[lead..].rfind('.') {
        Some(i) => {
            let at = base_start + lead + i;
            (p[..at].to_string(), p[at..].to_string())
        }
        None => (p.to_string(), String::new()),
    }
}

const UNITS: [(char, u32); 8] = [
    ('K', 1),
    ('M', 2),
    ('G', 3),
    ('T', 4),
    ('P', 5),
    ('E', 6),
    ('Z', 7),
    ('Y', 8),
];

fn human_to_bytes(s: &str, default_unit: Option<&str>, isbits: bool) -> Result<i64, Error> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = (s[..split].trim(), s[split..].trim());
    let n: f64 = num
        .parse()
        .map_err(|_| invalid(format!("human_to_bytes() can't interpret a valid unit for `{s}`")))?;
    let unit = if unit.is_empty() {
        default_unit.unwrap_or("")
    } else {
        unit
    };
    let mut chars = unit.chars();
    let power = match chars.next() {
        None => 0,
        Some(c) if c.eq_ignore_ascii_case(&'b') && unit.len() == 1 => 0,
        Some(c) => UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(&c))
            .map(|(_, p)| *p)
            .ok_or_else(|| invalid(format!("human_to_bytes() failed to convert `{s}`: unknown unit")))?,
    };
    let suffix: String = chars.collect();
    let want = if isbits { "b" } else { "B" };
    if power > 0 && !suffix.is_empty() && suffix != want {
        return Err(invalid(format!(
            "human_to_bytes() failed to convert `{s}`: the unit should end in `{want}`"
        )));
    }
    Ok((n * 1024f64.powi(power as i32)).round() as i64)
}

fn human_readable(n: f64, isbits: bool, unit: Option<&str>) -> String {
    let suffix = if isbits { "b" } else { "B" };
    let mut power = 0u32;
    let mut v = n;
    match unit {
        Some(u) => {
            power = UNITS
                .iter()
                .find(|(c, _)| u.starts_with(*c))
                .map(|(_, p)| *p)
                .unwrap_or(0);
            v = n / 1024f64.powi(power as i32);
        }
        None => {
            while v.abs() >= 1024.0 && power < 8 {
                v /= 1024.0;
                power += 1;
            }
        }
    }
    let prefix = if power == 0 {
        String::new()
    } else {
        UNITS[(power - 1) as usize].0.to_string()
    };
    let name = if power == 0 && !isbits {
        "Bytes".to_string()
    } else {
        format!("{prefix}{suffix}")
    };
    let name = if power == 0 && isbits { "bits".to_string() } else { name };
    format!("{v:.2} {name}")
}

fn urlsplit(url: &str) -> Vec<(&'static str, Value)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
            (s.to_ascii_lowercase(), format!("//{r}"))
        }
        _ => (String::new(), url.to_string()),
    };
    let (rest, fragment) = rest.split_once('#').map_or((rest.as_str(), ""), |(a, b)| (a, b));
    let (rest, query) = rest.split_once('?').map_or((rest, ""), |(a, b)| (a, b));
    let (netloc, path) = match rest.strip_prefix("//") {
        Some(r) => match r.find('/') {
            Some(i) => (&r[..i], &r[i..]),
            None => (r, ""),
        },
        None => ("", rest),
    };
    let (userinfo, hostport) = netloc.rsplit_once('@').map_or((None, netloc), |(u, h)| (Some(u), h));
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Value::from(a), Value::from(b)),
            None => (Value::from(u), Value::from(())),
        },
        None => (Value::from(()), Value::from(())),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().ok()),
        _ => (hostport, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    vec![
        ("fragment", Value::from(fragment)),
        (
            "hostname",
            if host.is_empty() {
                Value::from(())
            } else {
                Value::from(host)
            },
        ),
        ("netloc", Value::from(netloc)),
        ("password", password),
        ("path", Value::from(path)),
        ("port", port.map(Value::from).unwrap_or(Value::from(()))),
        ("query", Value::from(query)),
        ("scheme", Value::from(scheme)),
        ("username", username),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(data: &[u8], algo: &str) -> Result<String, Error> {
    use sha2::Digest as _;
    Ok(match algo {
        "md5" => hex(&md5::Md5::digest(data)),
        "sha1" => hex(&sha1::Sha1::digest(data)),
        "sha224" => hex(&sha2::Sha224::digest(data)),
        "sha256" => hex(&sha2::Sha256::digest(data)),
        "sha384" => hex(&sha2::Sha384::digest(data)),
        "sha512" => hex(&sha2::Sha512::digest(data)),
        other => {
            return Err(invalid(format!(
                "roll's `hash` knows md5, sha1, sha224, sha256, sha384 and sha512, not `{other}`"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitext_is_pythons() {
        assert_eq!(splitext("a/b.tar.gz"), ("a/b.tar".into(), ".gz".into()));
        assert_eq!(splitext(".bashrc"), (".bashrc".into(), String::new()));
        assert_eq!(splitext("x.d/file"), ("x.d/file".into(), String::new()));
    }
}
