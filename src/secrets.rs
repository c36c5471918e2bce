//! Secret values seen during a run, masked by value in everything roll reports. A value becomes
//! secret when it comes from the controller's environment (`lookup('env', ...)`), from a
//! variable named in `roll_secret_vars`, from a registry password, or from the result of a
//! `no_log` task. Every event passes through `mask_event` before any report (terminal, JSON
//! Lines, JUnit) sees it, so diffs, results, task names and messages are all covered.
//! Values shorter than `MIN_LEN` are not masked: they would hide ordinary words and numbers.

use crate::exec::events::Event;
use minijinja::Value;
use minijinja::value::ValueKind;
use std::borrow::Cow;
use std::sync::RwLock;

pub const MASK: &str = "********";
pub const MIN_LEN: usize = 6;

/// Longest first, so that a secret containing another is masked whole.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember a secret value (and each of its lines, for multi-line secrets shown line by line).
pub fn add(s: &str) {
    let mut parts: Vec<&str> = vec![s.trim()];
    if s.contains('\n') {
        parts.extend(s.lines().map(str::trim));
    }
    let mut list = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for p in parts {
        if p.chars().count() >= MIN_LEN && !list.iter().any(|x| x == p) {
            list.push(p.to_string());
        }
    }
    list.sort_by_key(|x| std::cmp::Reverse(x.len()));
}

/// Remember every string inside a value.
pub fn add_value(v: &Value) {
    match v.kind() {
        ValueKind::String => add(v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Map => {
            if let Ok(iter) = v.try_iter() {
                for k in iter {
                    if v.kind() == ValueKind::Map {
                        if let Ok(x) = v.get_item(&k) {
                            add_value(&x);
                        }
                    } else {
                        add_value(&k);
                    }
                }
            }
        }
        _ => {}
    }
}

/// `s` with every secret replaced by `MASK`.
pub fn mask(s: &str) -> Cow<'_, str> {
    let list = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if list.is_empty() || !list.iter().any(|x| s.contains(x.as_str())) {
        return Cow::Borrowed(s);
    }
    let mut out = s.to_string();
    for x in list.iter() {
        if out.contains(x.as_str()) {
            out = out.replace(x.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

fn mask_in_place(s: &mut String) {
    if let Cow::Owned(m) = mask(s) {
        *s = m;
    }
}

pub fn mask_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => mask_in_place(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(mask_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(mask_json),
        _ => {}
    }
}

/// Mask every text an event carries.
pub fn mask_event(e: &mut Event) {
    if SECRETS.read().unwrap_or_else(|e| e.into_inner()).is_empty() {
        return;
    }
    match e {
        Event::PlayStart { name, .. } | Event::TaskStart { name, .. } => mask_in_place(name),
        Event::Host(r) => {
            mask_json(&mut r.result);
            if let Some(d) = &mut r.debug {
                mask_json(d);
            }
            if let Some(i) = &mut r.item {
                mask_in_place(i);
            }
            for d in &mut r.diffs {
                mask_in_place(&mut d.path);
                mask_in_place(&mut d.before);
                mask_in_place(&mut d.after);
            }
        }
        Event::Retry { task, .. } => mask_in_place(task),
        Event::Warning { message } | Event::Progress { message, .. } => mask_in_place(message),
        Event::TaskEnd { name, .. } => mask_in_place(name),
        Event::RunStart { .. }
        | Event::RunEnd { .. }
        | Event::NoHostsMatched
        | Event::NoMoreHosts
        | Event::Recap { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_whole_and_short_values_are_left_alone() {
        add("tok-123456");
        add("tok-123456-long");
        add("abc");
        assert_eq!(mask("a tok-123456-long b tok-123456"), format!("a {MASK} b {MASK}"));
        assert_eq!(mask("abc stays"), "abc stays");
        let mut v = serde_json::json!({"cmd": ["echo", "tok-123456"], "rc": 0});
        mask_json(&mut v);
        assert_eq!(v["cmd"][1], MASK);
    }
}
