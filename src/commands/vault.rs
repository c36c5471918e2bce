//! `roll vault encrypt|decrypt|view|encrypt_string`: ansible-vault's commands, with its
//! formats and messages; and the terminal prompt for vault passwords every command shares.

use crate::cli::{VaultAction, VaultArgs, VaultCmd, VaultCommon};
use crate::exit::Exit;
use crate::vault::Keyring;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

pub fn run(cmd: VaultCmd) -> Exit {
    match action(cmd.action) {
        Ok(()) => Exit::Ok,
        Err(Failure::Input(msg, help)) => {
            eprintln!("error: {msg}");
            if let Some(h) = help {
                eprintln!("  = help: {h}");
            }
            Exit::InvalidInput
        }
    }
}

enum Failure {
    Input(String, Option<String>),
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Input(msg.into(), None))
}

/// The run's vault passwords (for `roll play` and the others), asking on the terminal where
/// the arguments say so.
pub fn keyring(a: &VaultArgs) -> Result<Keyring, crate::diagnostic::Diagnostic> {
    crate::settings::vault_keyring(a, &mut |q| prompt(q))
}

/// Ask for a password on the controlling terminal, without echo.
pub fn prompt(question: &str) -> Result<String, String> {
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err("there is no terminal to ask on".into());
    }
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("cannot open the terminal: {e}"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tty);
    // SAFETY: termios is plain data; tcgetattr fills it for an open terminal descriptor.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is the terminal opened above, `saved` a valid termios.
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above; the settings are restored below.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let _ = write!(tty, "{question}");
    let _ = tty.flush();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let read = loop {
        match tty.read(&mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) if byte[0] == b'\n' => break Ok(()),
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    if have_termios {
        // SAFETY: restores what tcgetattr read.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    read.map_err(|e| format!("cannot read the terminal: {e}"))?;
    let text = String::from_utf8(line).map_err(|_| "the password is not UTF-8".to_string())?;
    Ok(text.trim_end_matches('\r').to_string())
}

/// The passwords given, or (on a terminal, none given) one asked for; to encrypt, asked twice.
fn passwords(common: &VaultCommon, new: bool) -> Result<Keyring, Failure> {
    let ring = keyring(&common.vault).map_err(|d| Failure::Input(d.message, d.help))?;
    if !ring.is_empty() {
        return Ok(ring);
    }
    let asked = if new {
        let first = prompt("New Vault password: ").map_err(no_password)?;
        let again = prompt("Confirm New Vault password: ").map_err(no_password)?;
        if first != again {
            return fail("the passwords do not match");
        }
        first
    } else {
        prompt("Vault password: ").map_err(no_password)?
    };
    if asked.is_empty() {
        return fail("the vault password is empty");
    }
    Ok(Keyring::new(vec![crate::vault::Password::new(
        crate::vault::DEFAULT_ID,
        asked,
    )]))
}

fn no_password(e: String) -> Failure {
    Failure::Input(
        format!("no vault password was given ({e})"),
        Some("give `--vault-password-file FILE`, `--vault-id LABEL@FILE` or `--ask-vault-pass`".into()),
    )
}

fn is_stdio(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn read_input(p: &Path) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    if is_stdio(p) {
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::Input(format!("cannot read standard input: {e}"), None))?;
        return Ok(buf);
    }
    std::fs::read(p).map_err(|e| Failure::Input(format!("cannot read `{}`: {e}", p.display()), None))
}

/// Write where the result goes: standard output, or the file, replaced atomically with its mode.
fn write_output(p: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if is_stdio(p) {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Failure::Input(format!("cannot write standard output: {e}"), None));
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let written = (|| {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        let mode = std::fs::metadata(p).map(|m| m.permissions()).ok();
        if let Some(m) = mode {
            tmp.as_file().set_permissions(m)?;
        }
        tmp.persist(p).map_err(|e| e.error)?;
        Ok::<(), std::io::Error>(())
    })();
    written.map_err(|e| Failure::Input(format!("cannot write `{}`: {e}", p.display()), None))
}

/// The files to work on, and where each result goes: in place, or `--output`.
fn targets(files: Vec<PathBuf>, output: Option<PathBuf>) -> Result<Vec<(PathBuf, PathBuf)>, Failure> {
    let files = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files
    };
    if output.is_some() && files.len() > 1 {
        return fail("`--output` takes one input file");
    }
    Ok(files
        .into_iter()
        .map(|f| {
            let out = output.clone().unwrap_or_else(|| f.clone());
            (f, out)
        })
        .collect())
}

fn action(a: VaultAction) -> Result<(), Failure> {
    match a {
        VaultAction::Encrypt { common, output, files } => {
            let ring = passwords(&common, true)?;
            for (input, out) in targets(files, output)? {
                let plain = read_input(&input)?;
                if std::str::from_utf8(&plain).is_ok_and(crate::vault::is_vaulted) {
                    return fail(format!("`{}` is already encrypted", input.display()));
                }
                let text = ring
                    .encrypt(&plain, common.encrypt_vault_id.as_deref())
                    .map_err(|e| Failure::Input(e, None))?;
                write_output(&out, text.as_bytes())?;
            }
            eprintln!("Encryption successful");
        }
        VaultAction::Decrypt { common, output, files } => {
            let ring = passwords(&common, false)?;
            for (input, out) in targets(files, output)? {
                let plain = decrypt_file(&ring, &input)?;
                write_output(&out, &plain)?;
            }
            eprintln!("Decryption successful");
        }
        VaultAction::View { common, files } => {
            let ring = passwords(&common, false)?;
            let files = if files.is_empty() {
                vec![PathBuf::from("-")]
            } else {
                files
            };
            for input in files {
                let plain = decrypt_file(&ring, &input)?;
                write_output(Path::new("-"), &plain)?;
            }
        }
        VaultAction::EncryptString {
            common,
            name,
            stdin_name,
            strings,
        } => {
            let ring = passwords(&common, true)?;
            let mut items: Vec<(Option<String>, String)> = Vec::new();
            let from_stdin = strings.is_empty() || strings.iter().any(|s| s == "-");
            if from_stdin {
                if std::io::stdin().is_terminal() {
                    eprintln!(
                        "Reading plaintext input from stdin. (ctrl-d to end input, twice if your content does not already have a newline)"
                    );
                }
                let text = String::from_utf8(read_input(Path::new("-"))?)
                    .map_err(|_| Failure::Input("standard input is not UTF-8 text".into(), None))?;
                items.push((stdin_name.clone(), text));
            }
            let mut names = name.into_iter();
            for s in strings.into_iter().filter(|s| s != "-") {
                items.push((names.next(), s));
            }
            let mut out = String::new();
            for (n, plain) in items {
                let text = ring
                    .encrypt(plain.as_bytes(), common.encrypt_vault_id.as_deref())
                    .map_err(|e| Failure::Input(e, None))?;
                if let Some(n) = n {
                    out.push_str(&format!("{n}: "));
                }
                out.push_str("!vault |\n");
                for line in text.lines() {
                    out.push_str(&format!("          {line}\n"));
                }
            }
            write_output(Path::new("-"), out.as_bytes())?;
            eprintln!("Encryption successful");
        }
    }
    Ok(())
}

fn decrypt_file(ring: &Keyring, input: &Path) -> Result<Vec<u8>, Failure> {
    let bytes = read_input(input)?;
    let shown = if is_stdio(input) {
        "standard input".to_string()
    } else {
        format!("`{}`", input.display())
    };
    let text = std::str::from_utf8(&bytes)
        .ok()
        .filter(|t| crate::vault::is_vaulted(t))
        .ok_or_else(|| Failure::Input(format!("{shown} is not vault-encrypted"), None))?;
    ring.decrypt_bytes(text)
        .map_err(|e| Failure::Input(format!("cannot decrypt {shown}: {e}"), Some(crate::vault::help(&e))))
}
