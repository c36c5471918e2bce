//! `json_query` (community.general, JMESPath), `password_hash` (SHA-crypt), `random` and
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

/// SHA-crypt's salt alphabet.
fn crypt_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '/'
}

/// `password_hash(hashtype, salt, salt_size, rounds, ident)`: sha512_crypt / sha256_crypt in
/// the Modular Crypt Format, with passlib's rules (salt of at most 16 characters of `./0-9A-Za-z`,
/// at least 1,000 rounds) and ansible-core's default rounds (656,000 and 535,000), which show in
/// the hash as `rounds=N` since they are not SHA-crypt's implicit 5,000.
fn password_hash(password: &Value, args: &[Value], kwargs: &Kwargs) -> Result<String, Error> {
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        Ok(match args.get(i) {
            Some(v) => Some(v.clone()),
            None => kwargs.get::<Option<Value>>(name)?,
        }
        .filter(|v| !v.is_none()))
    };
    let hashtype = arg(0, "hashtype")?.map_or_else(|| "sha512".to_string(), |v| value_to_string(&v));
    let salt = arg(1, "salt")?.map(|v| value_to_string(&v)).filter(|s| !s.is_empty());
    let salt_size = arg(2, "salt_size")?;
    let rounds = arg(3, "rounds")?;
    let ident = arg(4, "ident")?;
    kwargs.assert_all_used()?;
    let (sha512, algo) = match hashtype.as_str() {
        "sha512" | "sha512_crypt" => (true, "sha512_crypt"),
        "sha256" | "sha256_crypt" => (false, "sha256_crypt"),
        "md5" | "md5_crypt" | "blowfish" | "bcrypt" => {
            return Err(invalid(format!(
                "roll's password_hash hashes with sha512 and sha256 (SHA-crypt), not `{hashtype}`"
            )));
        }
        other => {
            return Err(invalid(format!(
                "{other} is not in the list of supported passlib algorithms: md5, blowfish, sha256, sha512"
            )));
        }
    };
    if ident.is_some() {
        return Err(invalid(format!("Could not hash the secret: {algo} takes no `ident`")));
    }
    let password = match password.kind() {
        ValueKind::String => value_to_string(password),
        other => {
            return Err(invalid(format!(
                "secret must be unicode or bytes, not {}",
                match other {
                    ValueKind::Number if password.is_integer() => "int".to_string(),
                    ValueKind::Number => "float".to_string(),
                    k => k.to_string(),
                }
            )));
        }
    };
    let hash_fail = |msg: String| invalid(format!("Could not hash the secret: {msg}"));
    let salt = match salt {
        Some(s) => {
            if s.chars().count() > 16 {
                return Err(hash_fail(format!("salt too large ({algo} requires <= 16 chars)")));
            }
            if !s.chars().all(crypt_char) {
                return Err(hash_fail(format!("invalid characters in {algo} salt")));
            }
            s
        }
        None => {
            let size = match salt_size {
                Some(v) => i64::try_from(v).map_err(|_| invalid("salt_size must be an integer"))?,
                None => 16,
            };
            if !(1..=16).contains(&size) {
                return Err(hash_fail(format!("salt_size must be between 1 and 16 for {algo}")));
            }
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./";
            let mut rng = Rng::new(None);
            (0..size)
                .map(|_| rng.below(ALPHABET.len() as u64).map(|i| ALPHABET[i as usize] as char))
                .collect::<Result<String, Error>>()?
        }
    };
    let rounds: u32 = match rounds {
        Some(v) => {
            let n = i64::try_from(v.clone()).map_err(|_| invalid(format!("rounds must be an integer, got `{v}`")))?;
            if n < 1000 {
                return Err(hash_fail(format!(
                    "{algo}: min_desired_rounds ({n}) is too low, must be at least 1000"
                )));
            }
            u32::try_from(n)
                .ok()
                .filter(|n| *n <= 999_999_999)
                .ok_or_else(|| hash_fail(format!("{algo}: rounds ({n}) is too high, must be at most 999999999")))?
        }
        None if sha512 => 656_000,
        None => 535_000,
    };
    let params = sha_crypt::Params::new(rounds).map_err(|e| hash_fail(format!("{e:?}")))?;
    // The crate's raw SHA-crypt, laid out in the Modular Crypt Format as crypt(3) does: the bytes
    // of the digest in SHA-crypt's order, in its base64 alphabet.
    use base64ct::Encoding as _;
    let encoded = if sha512 {
        const ORDER: [usize; 64] = [
            42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8, 50, 51, 30,
            9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58, 37, 38, 17, 59, 60, 39,
            18, 19, 61, 40, 41, 20, 62, 63,
        ];
        let raw = sha_crypt::sha512_crypt(password.as_bytes(), salt.as_bytes(), params);
        let ordered: Vec<u8> = ORDER.iter().map(|&i| raw[i]).collect();
        base64ct::Base64ShaCrypt::encode_string(&ordered)
    } else {
        const ORDER: [usize; 32] = [
            20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28, 18, 29, 19,
            9, 30, 31,
        ];
        let raw = sha_crypt::sha256_crypt(password.as_bytes(), salt.as_bytes(), params);
        let ordered: Vec<u8> = ORDER.iter().map(|&i| raw[i]).collect();
        base64ct::Base64ShaCrypt::encode_string(&ordered)
    };
    let id = if sha512 { 6 } else { 5 };
    let rounds_field = if rounds == 5000 {
        String::new()
    } else {
        format!("rounds={rounds}$")
    };
    Ok(format!("${id}${rounds_field}{salt}${encoded}"))
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
            let out = password_hash(&password, &args, &kwargs)?;
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
    fn sha512_crypt_of_the_crypt3_reference_vector() {
        // The reference vector of Drepper's SHA-crypt specification.
        let kw = Kwargs::from_iter(std::iter::empty::<(&str, Value)>());
        let args = [
            Value::from("sha512"),
            Value::from("saltstring"),
            Value::from(()),
            Value::from(5000),
        ];
        assert_eq!(
            password_hash(&Value::from("Hello world!"), &args, &kw).unwrap(),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
    }

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
