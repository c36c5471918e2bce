//! `json_query` (community.general, JMESPath), `password_hash` (hashed in crypt.rs), `random` and
//! `shuffle`, the `subelements` filter, and the `ansible.builtin.*` names of Ansible's own
//! filters and tests, as ansible-core 2.19 answers them.

use crate::secrets::Secrets;
use crate::values::value_to_string;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use sha2::Digest as _;
use std::sync::Arc;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// ansible-core 2.19's own filters (`ansible.builtin.NAME`): each FQCN calls the short name, so a
/// name roll lacks stays unknown under both.
const BUILTIN_FILTERS: &[&str] = &[
    "b64decode",
    "b64encode",
    "basename",
    "bool",
    "checksum",
    "combinations",
    "combine",
    "comment",
    "commonpath",
    "d",
    "default",
    "dict2items",
    "difference",
    "dirname",
    "expanduser",
    "expandvars",
    "extract",
    "fileglob",
    "flatten",
    "from_json",
    "from_yaml",
    "from_yaml_all",
    "groupby",
    "hash",
    "human_readable",
    "human_to_bytes",
    "intersect",
    "items2dict",
    "log",
    "mandatory",
    "map",
    "md5",
    "normpath",
    "password_hash",
    "path_join",
    "permutations",
    "pow",
    "product",
    "quote",
    "random",
    "realpath",
    "regex_escape",
    "regex_findall",
    "regex_replace",
    "regex_search",
    "reject",
    "rejectattr",
    "rekey_on_member",
    "relpath",
    "root",
    "select",
    "selectattr",
    "sha1",
    "shuffle",
    "split",
    "splitext",
    "subelements",
    "symmetric_difference",
    "ternary",
    "to_json",
    "to_nice_json",
    "to_nice_yaml",
    "to_uuid",
    "to_yaml",
    "type_debug",
    "union",
    "unique",
    "unvault",
    "urldecode",
    "urlsplit",
    "vault",
    "win_basename",
    "win_dirname",
    "win_splitdrive",
    "zip",
    "zip_longest",
];

/// ansible-core 2.19's own tests.
const BUILTIN_TESTS: &[&str] = &[
    "abs",
    "all",
    "any",
    "change",
    "changed",
    "contains",
    "defined",
    "directory",
    "exists",
    "failed",
    "failure",
    "falsy",
    "file",
    "finished",
    "is_abs",
    "is_dir",
    "is_file",
    "is_link",
    "is_mount",
    "is_same_file",
    "isnan",
    "issubset",
    "issuperset",
    "link",
    "link_exists",
    "match",
    "mount",
    "nan",
    "reachable",
    "regex",
    "same_file",
    "search",
    "skip",
    "skipped",
    "started",
    "subset",
    "succeeded",
    "success",
    "successful",
    "superset",
    "timedout",
    "truthy",
    "undefined",
    "unreachable",
    "uri",
    "url",
    "urn",
    "vault_encrypted",
    "vaulted_file",
    "version",
    "version_compare",
];

/// A source of random numbers: the system's, or, with a seed, a stream derived from the seed
/// (SHA-256 of the seed and a counter), the same on every run and host for the same seed. It is
/// not Python's Mersenne Twister: the same seed picks differently in roll and in Ansible.
struct Rng {
    seed: Option<[u8; 32]>,
    counter: u64,
}

impl Rng {
    fn new(seed: Option<&Value>) -> Rng {
        Rng {
            seed: seed.map(|s| sha2::Sha256::digest(value_to_string(s).as_bytes()).into()),
            counter: 0,
        }
    }

    fn next_u64(&mut self) -> Result<u64, Error> {
        match &self.seed {
            Some(seed) => {
                self.counter += 1;
                let mut h = sha2::Sha256::new();
                h.update(seed);
                h.update(self.counter.to_le_bytes());
                let out = h.finalize();
                let mut b = [0u8; 8];
                b.copy_from_slice(&out[..8]);
                Ok(u64::from_le_bytes(b))
            }
            None => getrandom::u64().map_err(|e| invalid(format!("no random numbers from the system: {e}"))),
        }
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    fn below(&mut self, n: u64) -> Result<u64, Error> {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64()?;
            if x < zone {
                return Ok(x % n);
            }
        }
    }
}

/// Python's `randrange(start, stop, step)`.
fn randrange(rng: &mut Rng, start: i64, stop: i64, step: i64) -> Result<i64, Error> {
    let width = stop as i128 - start as i128;
    let n = match step {
        0 => return Err(invalid("zero step for randrange()")),
        s if s > 0 => (width + s as i128 - 1).div_euclid(s as i128),
        s => (width + s as i128 + 1).div_euclid(s as i128),
    };
    if n <= 0 {
        return Err(invalid(format!(
            "empty range for randrange() ({start}, {stop}, {step})"
        )));
    }
    Ok((start as i128 + step as i128 * rng.below(n as u64)? as i128) as i64)
}

/// The items of what `random` or `shuffle` picks from: a list, a string's characters, a
/// mapping's keys.
fn items(v: &Value) -> Option<Vec<Value>> {
    match v.kind() {
        ValueKind::String => Some(value_to_string(v).chars().map(|c| Value::from(c.to_string())).collect()),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => v.try_iter().ok().map(Iterator::collect),
        _ => None,
    }
}

fn json_query(data: Value, expr: String) -> Result<Value, Error> {
    let fail = |e: jmespath::JmespathError| invalid(format!("JMESPathError in json_query filter plugin:\n{e}"));
    let compiled = jmespath::compile(&expr).map_err(fail)?;
    // Through serde_json's value: jmespath's own serializer refuses the 128-bit integers
    // minijinja holds some numbers in.
    let data = serde_json::to_value(&data)
        .map_err(|e| invalid(format!("Error in jmespath.search in json_query filter plugin:\n{e}")))?;
    let found = compiled.search(&data).map_err(fail)?;
    let json = serde_json::to_value(&*found)
        .map_err(|e| invalid(format!("Error in jmespath.search in json_query filter plugin:\n{e}")))?;
    Ok(crate::values::from_serde(&json))
}

/// The `subelements` filter: `[record, element]` for each element of each record's list at the
/// dotted path; unlike the lookup, the record keeps the list.
fn subelements(obj: Value, path: Value, skip: Option<bool>, kwargs: Kwargs) -> Result<Value, Error> {
    let skip_missing = match skip {
        Some(s) => s,
        None => kwargs.get::<Option<bool>>("skip_missing")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let records: Vec<Value> = match obj.kind() {
        ValueKind::Map => obj.try_iter()?.map(|k| obj.get_item(&k)).collect::<Result<_, _>>()?,
        ValueKind::Seq => obj.try_iter()?.collect(),
        _ => return Err(invalid("obj must be a list of dicts or a nested dict")),
    };
    let keys: Vec<Value> = match path.kind() {
        ValueKind::Seq => path.try_iter()?.collect(),
        ValueKind::String => value_to_string(&path).split('.').map(Value::from).collect(),
        _ => return Err(invalid("subelements must be a list or a string")),
    };
    let mut out = Vec::new();
    for rec in records {
        let mut cur = rec.clone();
        let mut found = true;
        for k in &keys {
            if cur.kind() != ValueKind::Map {
                return Err(invalid(format!(
                    "the key {k} should point to a dictionary, got '{cur}'"
                )));
            }
            match cur.get_item(k) {
                Ok(v) if !v.is_undefined() => cur = v,
                _ if skip_missing => {
                    found = false;
                    break;
                }
                _ => {
                    return Err(invalid(format!("could not find '{k}' key in iterated item {cur}")));
                }
            }
        }
        if !found {
            continue;
        }
        if cur.kind() != ValueKind::Seq {
            return Err(invalid(format!("the key {path} should point to a list, got {cur}")));
        }
        for el in cur.try_iter()? {
            out.push(Value::from(vec![rec.clone(), el]));
        }
    }
    Ok(Value::from(out))
}

pub fn register(env: &mut Environment<'static>, secrets: Arc<Secrets>) {
    for name in ["json_query", "community.general.json_query"] {
        env.add_filter(name, json_query);
    }
    // The hash of a secret is itself secret: a password_hash is a credential.
    let hash_secrets = secrets;
    env.add_filter(
        "password_hash",
        move |password: Value, args: Rest<Value>, kwargs: Kwargs| -> Result<String, Error> {
            let out = super::crypt::password_hash(&password, &args, &kwargs)?;
            if hash_secrets.reveals(&value_to_string(&password)) {
                hash_secrets.add(&out);
            }
            Ok(out)
        },
    );
    env.add_filter(
        "random",
        |end: Value, start: Option<Value>, step: Option<Value>, kwargs: Kwargs| -> Result<Value, Error> {
            let start = match start {
                Some(s) => Some(s),
                None => kwargs.get::<Option<Value>>("start")?,
            };
            let step = match step {
                Some(s) => Some(s),
                None => kwargs.get::<Option<Value>>("step")?,
            };
            let seed: Option<Value> = kwargs.get::<Option<Value>>("seed")?.filter(|s| !s.is_none());
            kwargs.assert_all_used()?;
            let mut rng = Rng::new(seed.as_ref());
            let int = |v: &Option<Value>, default: i64| -> Result<i64, Error> {
                match v {
                    Some(v) if v.is_true() => {
                        i64::try_from(v.clone()).map_err(|_| invalid(format!("random: `{v}` is not an integer")))
                    }
                    _ => Ok(default),
                }
            };
            if end.is_integer() {
                let end_n = i64::try_from(end.clone()).map_err(|_| invalid("random: the end is too large"))?;
                return Ok(Value::from(randrange(
                    &mut rng,
                    int(&start, 0)?,
                    end_n,
                    int(&step, 1)?,
                )?));
            }
            let Some(list) = items(&end) else {
                return Err(invalid("random can only be used on sequences and integers"));
            };
            if start.as_ref().is_some_and(Value::is_true) || step.as_ref().is_some_and(Value::is_true) {
                return Err(invalid("start and step can only be used with integer values"));
            }
            if list.is_empty() {
                return Err(invalid("Cannot choose from an empty sequence"));
            }
            let i = rng.below(list.len() as u64)? as usize;
            Ok(list[i].clone())
        },
    );
    env.add_filter("shuffle", |v: Value, kwargs: Kwargs| -> Result<Value, Error> {
        let seed: Option<Value> = kwargs.get::<Option<Value>>("seed")?.filter(Value::is_true);
        kwargs.assert_all_used()?;
        // As Ansible's: what is not a sequence comes back unchanged.
        let Some(mut list) = items(&v) else { return Ok(v) };
        let mut rng = Rng::new(seed.as_ref());
        for i in (1..list.len()).rev() {
            let j = rng.below(i as u64 + 1)? as usize;
            list.swap(i, j);
        }
        Ok(Value::from(list))
    });
    env.add_filter("subelements", subelements);

    for &name in BUILTIN_FILTERS {
        let fqcn = format!("ansible.builtin.{name}");
        env.add_filter(fqcn, move |state: &mut State, args: Rest<Value>| {
            state.apply_filter(name, &args)
        });
    }
    for &name in BUILTIN_TESTS {
        env.add_test(
            format!("ansible.builtin.{name}"),
            move |state: &mut State, args: Rest<Value>| state.perform_test(name, &args),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_random_is_reproducible_and_in_range() {
        let mut a = Rng::new(Some(&Value::from("web1")));
        let mut b = Rng::new(Some(&Value::from("web1")));
        for _ in 0..100 {
            let x = randrange(&mut a, 10, 100, 10).unwrap();
            assert_eq!(x, randrange(&mut b, 10, 100, 10).unwrap());
            assert!((10..100).contains(&x) && x % 10 == 0, "{x}");
        }
        assert!(randrange(&mut a, 5, 5, 1).is_err());
        assert!(randrange(&mut a, 0, 5, 0).is_err());
    }
}
