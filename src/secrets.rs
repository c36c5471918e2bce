//! The secret values of one run, masked by value in everything roll reports. A value becomes
//! secret when a vault decrypted it, when it comes from the controller's environment (`lookup('env', ...)`), from a
//! variable named in `roll_secret_vars`, from a registry password, or from the result of a
//! `no_log` task, and so does what `b64encode` makes of a text holding a secret. Every event
//! passes through the run's mask before any report (terminal, JSON Lines, JUnit) sees it, so
//! diffs, results (their mapping keys too), task names and messages are all covered.
//! Values shorter than `MIN_LEN` are not masked: they would hide ordinary words and numbers.
//!
//! The list belongs to the run (roll is also a library): two runs in one process never see
//! each other's secrets.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use minijinja::Value;
use minijinja::value::ValueKind;
use std::borrow::Cow;
use std::sync::RwLock;

pub const MASK: &str = "********";
pub const MIN_LEN: usize = 6;

/// The secrets of one run. Longest first, so that a secret containing another is masked whole.
#[derive(Debug, Default)]
pub struct Secrets {
    list: RwLock<Vec<String>>,
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Remember a secret value (and each of its lines, for multi-line secrets shown line by line),
    /// with its base64 forms: a template that encodes the secret alone (`password | b64encode`)
    /// shows those. (The encoding of a longer text that holds the secret depends on where the
    /// secret sits in it; the `b64encode` filter registers such outputs itself.)
    pub fn add(&self, s: &str) {
        let mut parts: Vec<&str> = vec![s.trim()];
        if s.contains('\n') {
            parts.extend(s.lines().map(str::trim));
        }
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        for p in parts {
            if p.chars().count() < MIN_LEN {
                continue;
            }
            let padded = STANDARD.encode(p);
            let unpadded = STANDARD_NO_PAD.encode(p);
            for form in [p.to_string(), padded, unpadded] {
                if !list.contains(&form) {
                    list.push(form);
                }
            }
        }
        list.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }

    /// Whether `s` shows any secret of the run.
    pub fn reveals(&self, s: &str) -> bool {
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        list.iter().any(|x| s.contains(x.as_str()))
    }

    /// Remember every string inside a value.
    pub fn add_value(&self, v: &Value) {
        match v.kind() {
            ValueKind::String => self.add(v.as_str().unwrap_or_default()),
            ValueKind::Seq | ValueKind::Map => {
                if let Ok(iter) = v.try_iter() {
                    for k in iter {
                        if v.kind() == ValueKind::Map {
                            if let Ok(x) = v.get_item(&k) {
                                self.add_value(&x);
                            }
                        } else {
                            self.add_value(&k);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// `s` with every secret replaced by `MASK`.
    pub fn mask<'a>(&self, s: &'a str) -> Cow<'a, str> {
        if !self.reveals(s) {
            return Cow::Borrowed(s);
        }
        let list = self.list.read().unwrap_or_else(|e| e.into_inner());
        let mut out = s.to_string();
        for x in list.iter() {
            if out.contains(x.as_str()) {
                out = out.replace(x.as_str(), MASK);
            }
        }
        Cow::Owned(out)
    }

    pub fn mask_in_place(&self, s: &mut String) {
        if let Cow::Owned(m) = self.mask(s) {
            *s = m;
        }
    }

    /// Mask every string in a JSON value, mapping keys included (a template can build a
    /// mapping keyed by a secret).
    pub fn mask_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.mask_in_place(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.mask_json(x)),
            serde_json::Value::Object(o) => {
                o.values_mut().for_each(|x| self.mask_json(x));
                if o.keys().any(|k| matches!(self.mask(k), Cow::Owned(_))) {
                    *o = self.mask_keys(std::mem::take(o));
                }
            }
            _ => {}
        }
    }

    /// The map with its keys masked, in the same order. Two keys that mask to the same text
    /// both stay, the later one numbered, so that no value disappears from a report.
    fn mask_keys(&self, o: serde_json::Map<String, serde_json::Value>) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::with_capacity(o.len());
        for (k, v) in o {
            let masked = self.mask(&k).into_owned();
            let mut key = masked.clone();
            let mut n = 2;
            while out.contains_key(&key) {
                key = format!("{masked} ({n})");
                n += 1;
            }
            out.insert(key, v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_whole_and_short_values_are_left_alone() {
        let s = Secrets::new();
        s.add("tok-123456");
        s.add("tok-123456-long");
        s.add("abc");
        assert_eq!(s.mask("a tok-123456-long b tok-123456"), format!("a {MASK} b {MASK}"));
        assert_eq!(s.mask("abc stays"), "abc stays");
        let mut v = serde_json::json!({"cmd": ["echo", "tok-123456"], "rc": 0});
        s.mask_json(&mut v);
        assert_eq!(v["cmd"][1], MASK);
    }

    #[test]
    fn mapping_keys_are_masked_and_none_is_lost() {
        let s = Secrets::new();
        s.add("key-123456");
        s.add("key-654321");
        let mut v = serde_json::json!({
            "msg": {"key-123456": 1, "x key-654321": {"key-123456": "key-654321"}, "key-654321": 3, "rc": 0}
        });
        s.mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "msg": {MASK: 1, format!("x {MASK}"): {MASK: MASK}, format!("{MASK} (2)"): 3, "rc": 0}
            })
        );
        let keys: Vec<&String> = v["msg"].as_object().unwrap().keys().collect();
        assert_eq!(keys, [MASK, &format!("x {MASK}"), &format!("{MASK} (2)"), "rc"]);
    }

    #[test]
    fn the_base64_forms_of_a_secret_are_masked() {
        let s = Secrets::new();
        s.add("pw-Kd72x");
        // Eight bytes encode with one `=` of padding: the unpadded form is a form of its own.
        assert_eq!(STANDARD.encode("pw-Kd72x"), "cHctS2Q3Mng=");
        assert_eq!(s.mask("Basic cHctS2Q3Mng="), format!("Basic {MASK}"));
        assert_eq!(s.mask("token=cHctS2Q3Mng&x=1"), format!("token={MASK}&x=1"));
        assert!(s.reveals("cHctS2Q3Mng"));
        assert!(!s.reveals("cHctS2Q3"));
        // Short values have no base64 forms either: `abc` is `YWJj`.
        s.add("abc");
        assert_eq!(s.mask("YWJj"), "YWJj");
    }

    #[test]
    fn two_runs_do_not_share_their_secrets() {
        let (a, b) = (Secrets::new(), Secrets::new());
        a.add("only-in-run-a");
        assert_eq!(a.mask("x only-in-run-a"), format!("x {MASK}"));
        assert_eq!(b.mask("x only-in-run-a"), "x only-in-run-a");
        assert!(b.is_empty());
    }
}
