//! Host patterns for `hosts:` and `--limit`: `a:b`, `a,b`, `a:!b`, `a:&b`, globs, `~regex`,
//! `g[0]` and `g[0:2]` (inclusive, as Ansible does it).

use super::Inventory;
use regex::Regex;
use std::collections::HashSet;
use wildmatch::WildMatch;

/// Resolve a pattern to host indices in inventory order. A term that matches nothing is an error:
/// a typo in a pattern must never silently deploy to fewer hosts.
pub fn resolve(inv: &mut Inventory, pattern: &str) -> Result<Vec<usize>, String> {
    let terms = split_terms(pattern);
    if terms.is_empty() {
        return Err("the host pattern is empty".into());
    }
    let (mut plain, mut and, mut not) = (Vec::new(), Vec::new(), Vec::new());
    for t in &terms {
        if let Some(rest) = t.strip_prefix('!') {
            not.push(rest);
        } else if let Some(rest) = t.strip_prefix('&') {
            and.push(rest);
        } else {
            plain.push(t.as_str());
        }
    }
    let mut selected: Vec<usize> = Vec::new();
    let mut seen = HashSet::new();
    if plain.is_empty() {
        // `!b` or `&b` alone apply to all hosts, as in Ansible.
        plain.push("all");
    }
    for t in plain {
        for h in term(inv, t)? {
            if seen.insert(h) {
                selected.push(h);
            }
        }
    }
    for t in and {
        let keep: HashSet<usize> = term(inv, t)?.into_iter().collect();
        selected.retain(|h| keep.contains(h));
    }
    for t in not {
        let drop: HashSet<usize> = term(inv, t)?.into_iter().collect();
        selected.retain(|h| !drop.contains(h));
    }
    Ok(selected)
}

/// Split on `,` when present, else on `:` outside brackets (so `g[0:2]` and IPv6 stay whole).
pub fn split_terms(pattern: &str) -> Vec<String> {
    let sep = if pattern.contains(',') { ',' } else { ':' };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in pattern.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn term(inv: &mut Inventory, t: &str) -> Result<Vec<usize>, String> {
    if let Some(re) = t.strip_prefix('~') {
        let re = Regex::new(re).map_err(|e| format!("invalid regular expression in `{t}`: {e}"))?;
        let hits = matching(inv, |name| re.is_match(name));
        return if hits.is_empty() {
            Err(format!("pattern `{t}` matches no host"))
        } else {
            Ok(hits)
        };
    }
    let (base, sub) = split_subscript(t)?;
    let hosts = if base == "localhost" && inv.host("localhost").is_none() {
        vec![inv.ensure_implicit_localhost()]
    } else if inv.groups.contains_key(base) {
        inv.group_hosts(base)
    } else if let Some(h) = inv.host(base) {
        vec![h]
    } else if base.contains(['*', '?', '[']) {
        let w = WildMatch::new(base);
        matching(inv, |name| w.matches(name))
    } else {
        Vec::new()
    };
    if hosts.is_empty() {
        let mut msg = format!("pattern `{base}` matches no host");
        if let Some(s) = crate::diagnostic::closest(
            base,
            inv.groups
                .keys()
                .map(String::as_str)
                .chain(inv.hosts.iter().map(|h| h.name.as_str())),
        ) {
            msg.push_str(&format!(" (did you mean `{s}`?)"));
        }
        return Err(msg);
    }
    match sub {
        None => Ok(hosts),
        Some((start, end)) => {
            let len = hosts.len() as i64;
            let norm = |i: i64| if i < 0 { len + i } else { i };
            let s = norm(start);
            let e = match end {
                None => s,
                Some(None) => len - 1,
                Some(Some(e)) => norm(e),
            };
            if s < 0 || s >= len || e < s {
                return Err(format!("subscript in `{t}` is out of range: `{base}` has {len} hosts"));
            }
            Ok(hosts[s as usize..=(e.min(len - 1)) as usize].to_vec())
        }
    }
}

/// Hosts and groups whose names satisfy `f`, as a union of host indices.
fn matching(inv: &Inventory, f: impl Fn(&str) -> bool) -> Vec<usize> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let groups: Vec<String> = inv.groups.keys().filter(|g| f(g)).cloned().collect();
    for g in groups {
        for h in inv.group_hosts(&g) {
            if seen.insert(h) {
                out.push(h);
            }
        }
    }
    for (i, h) in inv.hosts.iter().enumerate() {
        if f(&h.name) && seen.insert(i) {
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

type Subscript = (i64, Option<Option<i64>>);

/// `g[1]` → (1, None); `g[0:2]` → (0, Some(Some(2))); `g[1:]` → (1, Some(None)).
fn split_subscript(t: &str) -> Result<(&str, Option<Subscript>), String> {
    let Some(body) = t.strip_suffix(']') else {
        return Ok((t, None));
    };
    let Some(open) = body.rfind('[') else {
        return Ok((t, None));
    };
    let inner = &body[open + 1..];
    let base = &body[..open];
    let num = |s: &str| s.trim().parse::<i64>();
    if let Ok(i) = num(inner) {
        return Ok((base, Some((i, None))));
    }
    if let Some((a, b)) = inner.split_once(':') {
        if a.contains(|c: char| c.is_ascii_alphabetic()) || b.contains(|c: char| c.is_ascii_alphabetic()) {
            return Ok((t, None)); // a glob character class like `web[a:b]`
        }
        let start = if a.is_empty() {
            0
        } else {
            num(a).map_err(|_| format!("invalid subscript in `{t}`"))?
        };
        let end = if b.is_empty() {
            None
        } else {
            Some(num(b).map_err(|_| format!("invalid subscript in `{t}`"))?)
        };
        return Ok((base, Some((start, Some(end)))));
    }
    Ok((t, None))
}
