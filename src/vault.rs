//! The ansible-vault format (1.1, and 1.2 with a vault id): the run's vault passwords, and
//! decrypting and encrypting with them, byte for byte as ansible-vault does.
//!
//! The cryptography is RustCrypto's, never written here: PBKDF2-HMAC-SHA256 (10,000 rounds,
//! a 32-byte salt) derives the AES-256 key, the HMAC-SHA256 key and the CTR counter block;
//! the ciphertext is AES-256-CTR of the PKCS#7-padded text, authenticated by the HMAC, which
//! is checked in constant time before anything is decrypted. The envelope is
//! `$ANSIBLE_VAULT;1.1;AES256` (or `1.2;AES256;label`) and then, in lines of 80, the hex of
//! `hex(salt) \n hex(hmac) \n hex(ciphertext)`.
//!
//! Which password decrypts what is Ansible's rule: the passwords whose label is the value's
//! vault id first, then every other one (ansible.cfg's `vault_id_match` off).

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{KeyInit, Mac};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The first word of every vaulted text.
pub const HEADER: &str = "$ANSIBLE_VAULT";
/// The only cipher ansible-vault writes (and reads, since 2.4 dropped `AES`).
const CIPHER: &str = "AES256";
const ROUNDS: u32 = 10_000;
const SALT_LEN: usize = 32;
/// The label of a password given without one (`--vault-password-file`, `--ask-vault-pass`).
pub const DEFAULT_ID: &str = "default";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("it is not in the ansible-vault format: {0}")]
    Format(String),
    #[error("it is encrypted with the cipher `{0}`, and ansible-vault writes only `AES256`")]
    Cipher(String),
    /// No password was given to the run at all.
    #[error("no vault password was given to decrypt it")]
    NoPassword,
    /// Passwords were given; none of them authenticates the text.
    #[error("{}", wrong_password(.label, *.tried))]
    WrongPassword { label: Option<String>, tried: usize },
    #[error("the decrypted text is not UTF-8")]
    NotUtf8,
    #[error("the vault id `{0}` holds `;` or a line break, which the format cannot hold")]
    BadLabel(String),
}

fn wrong_password(label: &Option<String>, tried: usize) -> String {
    let what = if tried == 1 {
        "the vault password given does not decrypt it".to_string()
    } else {
        format!("none of the {tried} vault passwords given decrypts it")
    };
    match label {
        Some(l) => format!("{what} (it was encrypted with the vault id `{l}`)"),
        None => what,
    }
}

/// What to do about a vault that could not be read (the `help:` of its diagnostic).
pub fn help(e: &VaultError) -> String {
    match e {
        VaultError::NoPassword => "give the vault password with `--vault-password-file FILE` (a file, or a script that prints it), `--vault-id LABEL@FILE`, `--ask-vault-pass`, or ANSIBLE_VAULT_PASSWORD_FILE".into(),
        VaultError::WrongPassword { label: Some(l), .. } => format!(
            "give the password of the vault id `{l}`, e.g. `--vault-id {l}@FILE`, or check the password file"
        ),
        VaultError::WrongPassword { .. } => "check the vault password file (its first line is the password) or the vault ids given".into(),
        VaultError::NotUtf8 => "roll reads variables and templates as UTF-8 text".into(),
        _ => "encrypt it again with `roll vault encrypt` or `ansible-vault encrypt`".into(),
    }
}

/// A vaulted text, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `1.1` or `1.2`.
    pub version: String,
    /// The vault id of a 1.2 envelope.
    pub label: Option<String>,
    salt: Vec<u8>,
    hmac: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// Whether a text is vaulted: it starts with the header (after blank space, as in a `!vault |`
/// scalar or a file with a leading newline).
pub fn is_vaulted(text: &str) -> bool {
    text.trim_start().starts_with("$ANSIBLE_VAULT;")
}

impl Envelope {
    pub fn parse(text: &str) -> Result<Envelope, VaultError> {
        let mut lines = text.trim().lines().map(str::trim);
        let header = lines.next().unwrap_or_default();
        let parts: Vec<&str> = header.split(';').collect();
        if parts.first() != Some(&HEADER) || parts.len() < 3 {
            return Err(VaultError::Format(format!(
                "the first line should read `{HEADER};1.1;AES256`"
            )));
        }
        let version = parts[1].to_string();
        if !matches!(version.as_str(), "1.1" | "1.2") {
            return Err(VaultError::Format(format!(
                "version `{version}` is not one ansible-vault writes (1.1, 1.2)"
            )));
        }
        if parts[2].trim() != CIPHER {
            return Err(VaultError::Cipher(parts[2].trim().to_string()));
        }
        let label = parts.get(3).map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
        let body: String = lines.collect();
        let inner = unhex(&body).ok_or_else(|| VaultError::Format("its body is not hexadecimal".into()))?;
        let inner = String::from_utf8(inner).map_err(|_| VaultError::Format("its body is damaged".into()))?;
        let mut fields = inner.split('\n');
        let mut field = |what: &str| {
            fields
                .next()
                .and_then(unhex)
                .ok_or_else(|| VaultError::Format(format!("its {what} is missing or damaged")))
        };
        let (salt, hmac, ciphertext) = (field("salt")?, field("HMAC")?, field("ciphertext")?);
        Ok(Envelope {
            version,
            label,
            salt,
            hmac,
            ciphertext,
        })
    }

    /// The plaintext, if `password` authenticates the text.
    fn open(&self, password: &[u8]) -> Option<Vec<u8>> {
        let (key, mac_key, iv) = derive(password, &self.salt);
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&mac_key).ok()?;
        mac.update(&self.ciphertext);
        // Constant time: `verify_slice` compares without an early exit.
        mac.verify_slice(&self.hmac).ok()?;
        let mut buf = self.ciphertext.clone();
        Aes256Ctr::new(&key.into(), &iv.into()).apply_keystream(&mut buf);
        unpad(buf)
    }
}

/// AES key, HMAC key, counter block: the 80 bytes PBKDF2 derives, in that order.
fn derive(password: &[u8], salt: &[u8]) -> ([u8; 32], [u8; 32], [u8; 16]) {
    let mut out = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, ROUNDS, &mut out);
    let mut key = [0u8; 32];
    let mut mac_key = [0u8; 32];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&out[..32]);
    mac_key.copy_from_slice(&out[32..64]);
    iv.copy_from_slice(&out[64..]);
    (key, mac_key, iv)
}

/// PKCS#7 padding to AES's 16-byte block, as ansible-vault pads before CTR.
fn pad(text: &[u8]) -> Vec<u8> {
    let n = 16 - text.len() % 16;
    let mut out = text.to_vec();
    out.extend(std::iter::repeat_n(n as u8, n));
    out
}

fn unpad(mut buf: Vec<u8>) -> Option<Vec<u8>> {
    let n = *buf.last()? as usize;
    if n == 0 || n > 16 || n > buf.len() || !buf[buf.len() - n..].iter().all(|&b| b as usize == n) {
        return None;
    }
    buf.truncate(buf.len() - n);
    Some(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// `plaintext` encrypted with `password`, in the envelope ansible-vault writes (1.2 when a
/// vault id other than `default` is given), ending in a newline.
pub fn encrypt(plaintext: &[u8], password: &[u8], label: Option<&str>) -> Result<String, VaultError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| VaultError::Format(format!("no random salt: {e}")))?;
    encrypt_with_salt(plaintext, password, label, &salt)
}

fn encrypt_with_salt(
    plaintext: &[u8],
    password: &[u8],
    label: Option<&str>,
    salt: &[u8],
) -> Result<String, VaultError> {
    let label = label.filter(|l| *l != DEFAULT_ID);
    if let Some(l) = label
        && (l.contains(';') || l.contains('\n') || l.contains('\r'))
    {
        return Err(VaultError::BadLabel(l.to_string()));
    }
    let (key, mac_key, iv) = derive(password, salt);
    let mut buf = pad(plaintext);
    Aes256Ctr::new(&key.into(), &iv.into()).apply_keystream(&mut buf);
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(&mac_key).map_err(|_| VaultError::Format("HMAC key".into()))?;
    mac.update(&buf);
    let tag = mac.finalize().into_bytes();
    let body = hex(format!("{}\n{}\n{}", hex(salt), hex(&tag), hex(&buf)).as_bytes());
    let mut out = match label {
        Some(l) => format!("{HEADER};1.2;{CIPHER};{l}\n"),
        None => format!("{HEADER};1.1;{CIPHER}\n"),
    };
    for chunk in body.as_bytes().chunks(80) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    Ok(out)
}

/// One vault password and its label (`prod` of `--vault-id prod@file`).
#[derive(Clone)]
pub struct Password {
    pub label: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Password({}, ********)", self.label)
    }
}

impl Password {
    pub fn new(label: &str, secret: impl Into<Vec<u8>>) -> Password {
        Password {
            label: label.to_string(),
            secret: secret.into(),
        }
    }
}

/// The vault passwords of one run, in the order they were given.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    passwords: Vec<Password>,
}

impl Keyring {
    pub fn new(passwords: Vec<Password>) -> Keyring {
        Keyring { passwords }
    }

    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// Decrypt a vaulted text to bytes (a file given to `copy` need not be text).
    pub fn decrypt_bytes(&self, text: &str) -> Result<Vec<u8>, VaultError> {
        let env = Envelope::parse(text)?;
        if self.passwords.is_empty() {
            return Err(VaultError::NoPassword);
        }
        let label = env.label.as_deref();
        let first = self.passwords.iter().filter(|p| Some(p.label.as_str()) == label);
        let rest = self.passwords.iter().filter(|p| Some(p.label.as_str()) != label);
        first
            .chain(rest)
            .find_map(|p| env.open(&p.secret))
            .ok_or(VaultError::WrongPassword {
                label: env.label.clone(),
                tried: self.passwords.len(),
            })
    }

    pub fn decrypt(&self, text: &str) -> Result<String, VaultError> {
        String::from_utf8(self.decrypt_bytes(text)?).map_err(|_| VaultError::NotUtf8)
    }

    /// The password to encrypt with: the one labelled `id`, else the only one given.
    pub fn for_encrypting(&self, id: Option<&str>) -> Result<&Password, String> {
        match id {
            Some(id) => self
                .passwords
                .iter()
                .find(|p| p.label == id)
                .ok_or_else(|| format!("no vault password has the vault id `{id}`")),
            None => match self.passwords.as_slice() {
                [] => Err("no vault password was given".into()),
                [one] => Ok(one),
                _ => Err("several vault passwords were given; name the one to encrypt with".into()),
            },
        }
    }

    pub fn encrypt(&self, plaintext: &[u8], id: Option<&str>) -> Result<String, String> {
        let p = self.for_encrypting(id)?;
        encrypt(plaintext, &p.secret, Some(&p.label)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypts_what_ansible_vault_encrypted_with_and_without_a_vault_id() {
        // From tests/vault (tests/vault/regen.sh): ansible-vault 2.19.14.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vault/");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).unwrap();
        let default = Keyring::new(vec![Password::new(DEFAULT_ID, "vault-pass-Yh3k")]);
        let both = Keyring::new(vec![
            Password::new(DEFAULT_ID, "vault-pass-Yh3k"),
            Password::new("prod", "prod-pass-Qm8w"),
        ]);
        let plain = "db_password: \"db-secret-Xw41r\"\napi_token: tok-Vault-77aa\n";
        assert_eq!(default.decrypt(&read("vars.yml")).unwrap(), plain);
        assert_eq!(
            both.decrypt(&read("vars-prod.yml")).unwrap(),
            "prod_db_password: prod-db-Rt62w\n"
        );
        assert_eq!(
            Envelope::parse(&read("vars-prod.yml")).unwrap().label.as_deref(),
            Some("prod")
        );
        assert_eq!(
            default.decrypt(&read("vars-prod.yml")),
            Err(VaultError::WrongPassword {
                label: Some("prod".into()),
                tried: 1
            })
        );
        assert_eq!(
            Keyring::default().decrypt(&read("vars.yml")),
            Err(VaultError::NoPassword)
        );
        assert_eq!(
            default.decrypt(&read("secret.txt")).unwrap(),
            "key-file-contents-H8d3\n"
        );
    }

    #[test]
    fn what_roll_encrypts_it_decrypts_and_a_changed_byte_is_refused() {
        let ring = Keyring::new(vec![Password::new("prod", "pw-123456")]);
        let v = ring.encrypt(b"hello world, 17 b", Some("prod")).unwrap();
        assert!(v.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"), "{v}");
        assert!(v.lines().skip(1).all(|l| l.len() <= 80));
        assert_eq!(ring.decrypt(&v).unwrap(), "hello world, 17 b");
        let v11 = encrypt(b"x", b"pw", None).unwrap();
        assert!(v11.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"));
        // Flip one hex digit of the body: the HMAC no longer matches.
        let mut damaged: Vec<char> = v.chars().collect();
        let at = v.find('\n').unwrap() + 10;
        damaged[at] = if damaged[at] == '3' { '4' } else { '3' };
        let damaged: String = damaged.into_iter().collect();
        assert!(ring.decrypt(&damaged).is_err());
    }

    #[test]
    fn a_known_salt_gives_a_known_envelope() {
        // The same inputs always give the same bytes: the format is pinned, not only the round trip.
        let a = encrypt_with_salt(b"secret", b"pw", None, &[7u8; 32]).unwrap();
        let b = encrypt_with_salt(b"secret", b"pw", None, &[7u8; 32]).unwrap();
        assert_eq!(a, b);
        let env = Envelope::parse(&a).unwrap();
        assert_eq!(env.salt, vec![7u8; 32]);
        assert_eq!(env.ciphertext.len(), 16);
    }

    #[test]
    fn envelopes_that_are_not_vaults_are_refused_with_the_reason() {
        assert!(matches!(
            Envelope::parse("$ANSIBLE_VAULT;1.1"),
            Err(VaultError::Format(_))
        ));
        assert!(matches!(
            Envelope::parse("$ANSIBLE_VAULT;2.0;AES256\n00"),
            Err(VaultError::Format(_))
        ));
        assert_eq!(
            Envelope::parse("$ANSIBLE_VAULT;1.1;AES\n00"),
            Err(VaultError::Cipher("AES".into()))
        );
        assert!(matches!(
            Envelope::parse("$ANSIBLE_VAULT;1.1;AES256\nzz"),
            Err(VaultError::Format(_))
        ));
        assert!(is_vaulted("\n  $ANSIBLE_VAULT;1.1;AES256\n"));
        assert!(!is_vaulted("a: $ANSIBLE_VAULT;"));
    }
}
