//! Ansible's set theory (`union`, `intersect`, `difference`, `symmetric_difference`), exponents
//! and logarithms (`log`, `pow`, `root`), combinatorics (`combinations`, `permutations`), and the
//! `normpath` and `to_uuid` filters, as ansible-core 2.19 answers them (its filter/mathstuff.py
//! and filter/core.py).

use super::more_filters::list as items;
use crate::secrets::Secrets;
use crate::values::value_to_string;
use indexmap::IndexSet;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};
use sha1::Digest as _;
use std::sync::Arc;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// More results than this from `combinations` or `permutations` is an error, not a hung run.
const MAX_COMBINATIONS: usize = 1_000_000;

/// ansible-core's namespace for `to_uuid` (filter/core.py `UUID_NAMESPACE_ANSIBLE`).
const UUID_NAMESPACE_ANSIBLE: [u8; 16] = [
    0x36, 0x1e, 0x6d, 0x51, 0xfa, 0xec, 0x44, 0x4a, 0x90, 0x79, 0x34, 0x13, 0x86, 0xda, 0x8e, 0x2e,
];

/// Each value once, in the order first seen. Ansible answers with a Python set where the values
/// are hashable, whose order is the interpreter's (string hashes differ from run to run); roll
/// keeps the order of its inputs, which is what Ansible does for unhashable values.
fn unique(values: impl IntoIterator<Item = Value>) -> Value {
    let set: IndexSet<Value> = values.into_iter().collect();
    Value::from(set.into_iter().collect::<Vec<_>>())
}

fn number(v: &Value, filter: &str) -> Result<f64, Error> {
    match v.kind() {
        ValueKind::Number => {
            f64::try_from(v.clone()).map_err(|_| invalid(format!("{filter}() can only be used on numbers")))
        }
        ValueKind::Bool => Ok(if v.is_true() { 1.0 } else { 0.0 }),
        _ => Err(invalid(format!("{filter}() can only be used on numbers"))),
    }
}

/// A float result, refusing what Python's `math` refuses ("math domain error").
fn float(x: f64) -> Result<Value, Error> {
    if x.is_finite() {
        Ok(Value::from(x))
    } else {
        Err(invalid("math domain error"))
    }
}

/// `r`-length selections of `pool` in Python's itertools order: combinations keep the pool's
/// order, permutations take every order.
fn select(pool: &[Value], r: usize, ordered: bool, out: &mut Vec<Value>, pick: &mut Vec<usize>) -> Result<(), Error> {
    if pick.len() == r {
        if out.len() >= MAX_COMBINATIONS {
            return Err(invalid("more than a million combinations"));
        }
        out.push(Value::from(pick.iter().map(|&i| pool[i].clone()).collect::<Vec<_>>()));
        return Ok(());
    }
    let start = if ordered { 0 } else { pick.last().map_or(0, |&i| i + 1) };
    for i in start..pool.len() {
        if ordered && pick.contains(&i) {
            continue;
        }
        pick.push(i);
        select(pool, r, ordered, out, pick)?;
        pick.pop();
    }
    Ok(())
}

/// Python's `posixpath.normpath`: `.` and empty parts dropped, `..` taken back where it can be,
/// a leading `//` kept (POSIX leaves its meaning to the system), `""` becomes `.`.
pub fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let lead = if p.starts_with("//") && !p.starts_with("///") {
        "//"
    } else if p.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if !lead.is_empty() && parts.is_empty() => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let out = format!("{lead}{}", parts.join("/"));
    if out.is_empty() { ".".into() } else { out }
}

/// A namespace as Python's `uuid.UUID()` reads it: hex digits, with or without hyphens, braces
/// or a `urn:uuid:` prefix.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s
        .trim()
        .trim_start_matches("urn:")
        .trim_start_matches("uuid:")
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// RFC 4122 version 5: the SHA-1 of the namespace and the name, with the version and variant set.
pub fn uuid5(namespace: &[u8; 16], name: &str) -> String {
    let digest = sha1::Sha1::new()
        .chain_update(namespace)
        .chain_update(name.as_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub fn register(env: &mut Environment<'static>, secrets: Arc<Secrets>) {
    env.add_filter("union", |a: Value, b: Value| -> Result<Value, Error> {
        Ok(unique(items(&a, "union")?.into_iter().chain(items(&b, "union")?)))
    });
    env.add_filter("intersect", |a: Value, b: Value| -> Result<Value, Error> {
        let b = items(&b, "intersect")?;
        Ok(unique(items(&a, "intersect")?.into_iter().filter(|x| b.contains(x))))
    });
    env.add_filter("difference", |a: Value, b: Value| -> Result<Value, Error> {
        let b = items(&b, "difference")?;
        Ok(unique(items(&a, "difference")?.into_iter().filter(|x| !b.contains(x))))
    });
    env.add_filter("symmetric_difference", |a: Value, b: Value| -> Result<Value, Error> {
        let (a, b) = (items(&a, "symmetric_difference")?, items(&b, "symmetric_difference")?);
        let only_a = a.iter().filter(|x| !b.contains(x));
        let only_b = b.iter().filter(|x| !a.contains(x));
        Ok(unique(only_a.chain(only_b).cloned()))
    });

    env.add_filter("log", |x: Value, base: Option<Value>| -> Result<Value, Error> {
        let x = number(&x, "log")?;
        if x <= 0.0 {
            return Err(invalid("math domain error"));
        }
        match base.map(|b| number(&b, "log")).transpose()? {
            None => float(x.ln()),
            Some(10.0) => float(x.log10()),
            Some(b) if b <= 0.0 || b == 1.0 => Err(invalid("math domain error")),
            Some(b) => float(x.ln() / b.ln()),
        }
    });
    env.add_filter("pow", |x: Value, y: Value| -> Result<Value, Error> {
        float(number(&x, "pow")?.powf(number(&y, "pow")?))
    });
    env.add_filter("root", |x: Value, base: Option<Value>| -> Result<Value, Error> {
        let x = number(&x, "root")?;
        match base.map(|b| number(&b, "root")).transpose()? {
            None | Some(2.0) => float(x.sqrt()),
            Some(0.0) => Err(invalid("root() can only be used on numbers")),
            Some(b) => float(x.powf(1.0 / b)),
        }
    });

    env.add_filter("combinations", |pool: Value, r: usize| -> Result<Value, Error> {
        let pool = items(&pool, "combinations")?;
        let mut out = Vec::new();
        if r <= pool.len() {
            select(&pool, r, false, &mut out, &mut Vec::new())?;
        }
        Ok(Value::from(out))
    });
    env.add_filter(
        "permutations",
        |pool: Value, r: Option<usize>| -> Result<Value, Error> {
            let pool = items(&pool, "permutations")?;
            let r = r.unwrap_or(pool.len());
            let mut out = Vec::new();
            if r <= pool.len() {
                select(&pool, r, true, &mut out, &mut Vec::new())?;
            }
            Ok(Value::from(out))
        },
    );

    env.add_filter("normpath", |p: Value| -> String { normpath(&value_to_string(&p)) });
    // The UUID of a secret is derived from it: it stays a secret.
    env.add_filter(
        "to_uuid",
        move |v: Value, namespace: Option<String>, kwargs: Kwargs| -> Result<String, Error> {
            let named: Option<String> = kwargs.get("namespace")?;
            kwargs.assert_all_used()?;
            let ns = match namespace.or(named) {
                None => UUID_NAMESPACE_ANSIBLE,
                Some(n) => uuid_bytes(&n).ok_or_else(|| {
                    invalid(format!(
                        "Invalid value '{n}' for 'namespace': badly formed hexadecimal UUID string"
                    ))
                })?,
            };
            let text = value_to_string(&v);
            let out = uuid5(&ns, &text);
            if secrets.reveals(&text) {
                secrets.add(&out);
            }
            Ok(out)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_is_pythons_posixpath() {
        for (p, want) in [
            ("", "."),
            ("a/./b/../c", "a/c"),
            ("/a//b/", "/a/b"),
            ("//a/b", "//a/b"),
            ("///a/b", "/a/b"),
            ("/../a", "/a"),
            ("../../a", "../../a"),
            ("a/../..", ".."),
            ("a/..", "."),
        ] {
            assert_eq!(normpath(p), want, "{p}");
        }
    }

    #[test]
    fn to_uuid_is_uuid5_in_ansibles_namespace() {
        // python3 -c "import uuid; print(uuid.uuid5(uuid.UUID('361E6D51-FAEC-444A-9079-341386DA8E2E'), 'www.example.com'))"
        assert_eq!(
            uuid5(&UUID_NAMESPACE_ANSIBLE, "www.example.com"),
            "69680a13-a686-5d20-a166-0e7b3b17ef84"
        );
        // uuid.NAMESPACE_DNS, the RFC's own example name.
        let dns = uuid_bytes("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
        assert_eq!(uuid5(&dns, "python.org"), "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    }
}
