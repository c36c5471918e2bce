//! The `password_hash` filter: md5_crypt, bcrypt, sha256_crypt and sha512_crypt hashes in the
//! Modular Crypt Format, with the salts, rounds and idents ansible-core 2.19 (through passlib)
//! accepts and the defaults it gives. The hashing itself is maintained crates' (RustCrypto's
//! `sha-crypt`, `bcrypt`, `pwhash`'s md5-crypt); this file only lays out their parameters.

use crate::values::value_to_string;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// The salt alphabet of crypt(3)'s hashes, in SHA-crypt's and md5-crypt's order.
const CRYPT64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The same characters in bcrypt's order, which its salt decodes by.
const BCRYPT64: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algo {
    Md5,
    Bcrypt,
    Sha256,
    Sha512,
}

impl Algo {
    /// ansible-core's names for passlib's algorithms (`md5` is `md5_crypt`, `blowfish` is
    /// `bcrypt`).
    fn parse(name: &str) -> Option<Algo> {
        Some(match name {
            "md5" | "md5_crypt" => Algo::Md5,
            "blowfish" | "bcrypt" => Algo::Bcrypt,
            "sha256" | "sha256_crypt" => Algo::Sha256,
            "sha512" | "sha512_crypt" => Algo::Sha512,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5_crypt",
            Algo::Bcrypt => "bcrypt",
            Algo::Sha256 => "sha256_crypt",
            Algo::Sha512 => "sha512_crypt",
        }
    }

    /// The longest salt passlib takes, and the size of the salt it makes.
    fn salt_size(self) -> usize {
        match self {
            Algo::Md5 => 8,
            Algo::Bcrypt => 22,
            Algo::Sha256 | Algo::Sha512 => 16,
        }
    }

    /// ansible-core's default rounds (crypt's, which it passes to passlib so both agree), and
    /// the bounds passlib holds rounds to. md5_crypt has no rounds.
    fn rounds(self) -> Option<(u32, u32, u32)> {
        match self {
            Algo::Md5 => None,
            Algo::Bcrypt => Some((12, 4, 31)),
            Algo::Sha256 => Some((535_000, 1000, 999_999_999)),
            Algo::Sha512 => Some((656_000, 1000, 999_999_999)),
        }
    }
}

/// `password_hash(hashtype, salt, salt_size, rounds, ident)`.
pub(super) fn password_hash(password: &Value, args: &[Value], kwargs: &Kwargs) -> Result<String, Error> {
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
    let ident = arg(4, "ident")?.map(|v| value_to_string(&v)).filter(|s| !s.is_empty());
    kwargs.assert_all_used()?;
    let algo = Algo::parse(&hashtype).ok_or_else(|| {
        invalid(format!(
            "{hashtype} is not in the list of supported passlib algorithms: md5, blowfish, sha256, sha512"
        ))
    })?;
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
    let name = algo.name();
    let hash_fail = |msg: String| invalid(format!("Could not hash the secret: {msg}"));
    let salt = match salt {
        Some(s) => {
            let len = s.chars().count();
            if algo == Algo::Bcrypt && len != 22 {
                let which = if len < 22 { "small" } else { "large" };
                return Err(hash_fail(format!(
                    "salt too {which} (bcrypt requires exactly 22 chars)"
                )));
            }
            if len > algo.salt_size() {
                return Err(hash_fail(format!(
                    "salt too large ({name} requires <= {} chars)",
                    algo.salt_size()
                )));
            }
            if !s.bytes().all(|c| CRYPT64.contains(&c)) {
                return Err(hash_fail(format!("invalid characters in {name} salt")));
            }
            s
        }
        None => {
            let size = match salt_size {
                Some(v) => usize::try_from(v).map_err(|_| invalid("salt_size must be an integer"))?,
                None => algo.salt_size(),
            };
            if algo == Algo::Bcrypt && size != 22 {
                return Err(hash_fail("bcrypt: salt_size must be 22".into()));
            }
            if !(1..=algo.salt_size()).contains(&size) {
                return Err(hash_fail(format!(
                    "salt_size must be between 1 and {} for {name}",
                    algo.salt_size()
                )));
            }
            random_salt(size)?
        }
    };
    let rounds = match (algo.rounds(), rounds) {
        (None, None) => 0,
        // passlib's md5_crypt takes no `rounds` (a TypeError from its `using()`).
        (None, Some(_)) => return Err(invalid(format!("{name} takes no `rounds`"))),
        (Some((default, _, _)), None) => default,
        (Some((_, min, max)), Some(v)) => {
            let n = i64::try_from(v.clone()).map_err(|_| invalid(format!("rounds must be an integer, got `{v}`")))?;
            if n < i64::from(min) {
                return Err(hash_fail(format!(
                    "{name}: min_desired_rounds ({n}) is too low, must be at least {min}"
                )));
            }
            if n > i64::from(max) {
                return Err(hash_fail(format!(
                    "{name}: rounds ({n}) is too high, must be at most {max}"
                )));
            }
            n as u32
        }
    };
    match algo {
        Algo::Md5 => md5(&password, &salt),
        Algo::Bcrypt => bcrypt(&password, &salt, rounds, ident.as_deref()),
        Algo::Sha256 | Algo::Sha512 => sha(algo == Algo::Sha512, &password, &salt, rounds),
    }
    .map_err(hash_fail)
}

/// A salt of `size` characters of crypt's alphabet.
fn random_salt(size: usize) -> Result<String, Error> {
    let mut out = String::with_capacity(size);
    while out.len() < size {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).map_err(|e| invalid(format!("no random numbers from the system: {e}")))?;
        // 64 divides 256: taking the low six bits is uniform.
        out.extend(
            buf.iter()
                .map(|b| CRYPT64[usize::from(b & 63)] as char)
                .take(size - out.len()),
        );
    }
    Ok(out)
}

/// md5_crypt (`$1$`): no rounds, no ident.
fn md5(password: &str, salt: &str) -> Result<String, String> {
    let setup = pwhash::HashSetup {
        salt: Some(salt),
        rounds: None,
    };
    // Deprecated by the crate for new passwords, as by passlib; ansible-core still offers it for
    // systems that read only md5-crypt.
    #[allow(deprecated)]
    pwhash::md5_crypt::hash_with(setup, password).map_err(|e| e.to_string())
}

/// bcrypt (`$2b$`, or `ident` `2a`/`2y`). Its salt is 22 characters of which the last holds two
/// bits that count; passlib clears the other four (`bcrypt64.repair_unused`), so the hash shows
/// the salt with its last character repaired, as here.
fn bcrypt(password: &str, salt: &str, cost: u32, ident: Option<&str>) -> Result<String, String> {
    let version = match ident.unwrap_or("2b") {
        "2b" => bcrypt::Version::TwoB,
        "2a" => bcrypt::Version::TwoA,
        "2y" => bcrypt::Version::TwoY,
        other => return Err(format!("invalid ident: '{other}'")),
    };
    let mut sixes = Vec::with_capacity(22);
    for c in salt.bytes() {
        let i = BCRYPT64
            .iter()
            .position(|b| *b == c)
            .ok_or("invalid characters in bcrypt salt")?;
        sixes.push(i as u8);
    }
    if let Some(last) = sixes.last_mut() {
        *last &= 0b11_0000;
    }
    // 22 six-bit characters: the 128 bits of the salt, big-endian, then the four cleared bits.
    let mut bits: u128 = 0;
    for (i, s) in sixes.iter().enumerate() {
        bits = if i < 21 {
            (bits << 6) | u128::from(*s)
        } else {
            (bits << 2) | u128::from(*s >> 4)
        };
    }
    let raw = bits.to_be_bytes();
    let parts = bcrypt::hash_with_salt(password.as_bytes(), cost, raw).map_err(|e| e.to_string())?;
    Ok(parts.format_for_version(version))
}

/// sha256_crypt (`$5$`) and sha512_crypt (`$6$`): `rounds=N` shows in the hash unless N is
/// SHA-crypt's implicit 5,000 (ansible-core's defaults are 535,000 and 656,000).
fn sha(sha512: bool, password: &str, salt: &str, rounds: u32) -> Result<String, String> {
    let params = sha_crypt::Params::new(rounds).map_err(|e| format!("{e:?}"))?;
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
    fn bcrypt_salt_keeps_only_the_bits_that_count() {
        // passlib's repair: the last character `v` (49) loses its low four bits and reads `u`.
        let a = bcrypt("secret", "abcdefghijklmnopqrstuv", 4, None).unwrap();
        let b = bcrypt("secret", "abcdefghijklmnopqrstuu", 4, None).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("$2b$04$abcdefghijklmnopqrstuu"), "{a}");
        assert!(bcrypt("secret", "abcdefghijklmnopqrstuu", 4, Some("2x")).is_err());
    }
}
