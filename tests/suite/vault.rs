//! Ansible vault: what ansible-vault 2.19.14 encrypted (the fixtures in tests/vault, with and
//! without vault ids; `tests/vault/regen.sh` makes them) decrypts in vars files, group_vars,
//! `-e @file`, `!vault` values and `copy` sources; the plaintexts appear in none of roll's
//! outputs; a vault roll cannot decrypt is invalid input before anything runs; `roll vault`
//! writes what ansible-vault reads, and reads what it writes. Local hosts: no sshd needed.

use crate::common;
use common::{roll, stderr, stdout, write};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vault")
}

/// The plaintexts of the fixtures: none may be shown.
const SECRETS: [&str; 8] = [
    "db-secret-Xw41r",
    "tok-Vault-77aa",
    "prod-db-Rt62w",
    "inline-secret-K2p9",
    "prod-inline-Z5t1",
    "line-one-abc",
    "line-two-def",
    "key-file-contents-H8d3",
];

const PLAYBOOK: &str = r#"
- hosts: all
  vars_files: [vars.yml]
  tasks:
    - name: "Use {{ db_password }}"
      debug: { msg: "db={{ db_password }} token={{ api_token }} prod={{ prod_db_password }}" }
    - name: Inline values
      debug: { msg: "{{ inline_secret }} / {{ prod_secret }} / {{ multi_line }} / {{ plain_value }}" }
    - name: Write them
      copy:
        content: "db={{ db_password }}\nprod={{ prod_db_password }}\ninline={{ inline_secret }}\n"
        dest: "{{ out }}/app.env"
    - name: Send the encrypted file
      copy: { src: secret.txt, dest: "{{ out }}/secret.txt" }
    - name: A failure that names one
      fail: { msg: "cannot use {{ prod_secret }}" }
      ignore_errors: true
    - name: The file lookup decrypts
      copy: { content: "{{ lookup('file', 'secret.txt') }}", dest: "{{ out }}/looked-up.txt" }
"#;

/// A project with every kind of vault: `vars.yml` (1.1) in `vars_files`, `vars-prod.yml` (1.2,
/// vault id `prod`) as group_vars, `inline.yml` (`!vault` values of both) as `-e @inline.yml`,
/// and `files/secret.txt` (1.1) as a `copy` source.
fn project(dir: &Path) {
    let f = fixtures();
    for (from, to) in [
        ("vars.yml", "vars.yml"),
        ("vars-prod.yml", "group_vars/all/vault.yml"),
        ("inline.yml", "inline.yml"),
        ("secret.txt", "files/secret.txt"),
        ("pass-default", "pass-default"),
        ("pass-prod", "pass-prod"),
    ] {
        let text = std::fs::read_to_string(f.join(from)).unwrap();
        write(dir, to, &text);
    }
    write(dir, "hosts", "app1 ansible_connection=local\n");
    write(dir, "pb.yml", PLAYBOOK);
    std::fs::create_dir_all(dir.join("out")).unwrap();
}

fn play(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = roll(dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", "@inline.yml", "-e", "out=out"])
        .args(args)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .output()
        .unwrap();
    (out.status.code(), format!("{}{}", stdout(&out), stderr(&out)))
}

#[test]
fn every_kind_of_vault_decrypts_and_its_values_appear_in_no_output() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    project(dir);
    let ids = ["--vault-password-file", "pass-default", "--vault-id", "prod@pass-prod"];
    let (code, human) = play(dir, &[&ids[..], &["-v", "--diff", "--junit", "report.xml"]].concat());
    assert_eq!(code, Some(0), "{human}");
    let (code, json) = play(dir, &[&ids[..], &["--format", "json", "--check", "--diff"]].concat());
    assert_eq!(code, Some(0), "{json}");
    let junit = std::fs::read_to_string(dir.join("report.xml")).unwrap();
    let plan = roll(dir)
        .args([
            "plan",
            "pb.yml",
            "-i",
            "hosts",
            "-e",
            "@inline.yml",
            "-e",
            "out=out",
            "-o",
            "saved.plan",
        ])
        .args(ids)
        .output()
        .unwrap();
    let plan_out = format!("{}{}", stdout(&plan), stderr(&plan));
    assert_eq!(plan.status.code(), Some(0), "{plan_out}");
    let plan_file = std::fs::read_to_string(dir.join("saved.plan")).unwrap();
    let inventory = roll(dir)
        .args(["inventory", "-i", "hosts", "--list"])
        .args(ids)
        .output()
        .unwrap();
    let inventory = format!("{}{}", stdout(&inventory), stderr(&inventory));
    assert!(inventory.contains("\"prod_db_password\": \"********\""), "{inventory}");
    for (what, text) in [
        ("log", &human),
        ("json", &json),
        ("junit", &junit),
        ("plan output", &plan_out),
        ("plan file", &plan_file),
        ("inventory", &inventory),
    ] {
        for s in SECRETS {
            assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
        }
    }
    assert!(human.contains("TASK [Use ********]"), "{human}");
    assert!(
        human.contains("\"msg\": \"db=******** token=******** prod=********\""),
        "{human}"
    );
    assert!(human.contains("cannot use ********"), "{human}");
    assert!(human.contains("/ visible\""), "a plain value stays visible: {human}");
    assert!(human.contains("+db=********"), "the diff is masked: {human}");
    // Used for real: the files hold the plaintexts.
    assert_eq!(
        std::fs::read_to_string(dir.join("out/app.env")).unwrap(),
        "db=db-secret-Xw41r\nprod=prod-db-Rt62w\ninline=inline-secret-K2p9\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/secret.txt")).unwrap(),
        "key-file-contents-H8d3\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/looked-up.txt")).unwrap(),
        "key-file-contents-H8d3"
    );
}

#[test]
fn a_vault_without_its_password_is_invalid_input_and_nothing_runs() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    project(dir);
    // No password at all: the first vault read is named, with what to give.
    let (code, text) = play(dir, &[]);
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains("error: cannot decrypt this `!vault` value: no vault password was given to decrypt it"),
        "{text}"
    );
    assert!(text.contains("--> inline.yml:2:16"), "{text}");
    assert!(text.contains("--vault-password-file FILE"), "{text}");
    // Only the default password: the values of the `prod` vault id are refused.
    let (code, text) = play(dir, &["--vault-password-file", "pass-default"]);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("vault id `prod`"), "{text}");
    assert!(!text.contains("PLAY ["), "nothing ran: {text}");
    assert!(!dir.join("out/app.env").exists());
    // A wrong password, from ANSIBLE_VAULT_PASSWORD_FILE.
    write(dir, "wrong", "not-the-password\n");
    let out = roll(dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", "out=out"])
        .env("ANSIBLE_VAULT_PASSWORD_FILE", "wrong")
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.contains("the vault password given does not decrypt it"), "{text}");
    // The decrypted text of a vault-encrypted file is never shown in a diagnostic.
    write(dir, "pb.yml", "- hosts: all\n  vars_files: [broken.yml]\n  tasks: []\n");
    let vaulted = roll(dir)
        .args([
            "vault",
            "encrypt",
            "--vault-password-file",
            "pass-default",
            "--output",
            "broken.yml",
            "-",
        ])
        .stdin_text("a: 1\nsecret_thing: [unclosed-Wq81\n")
        .unwrap();
    assert!(vaulted.status.success(), "{}", stderr(&vaulted));
    let (code, text) = play(
        dir,
        &["--vault-password-file", "pass-default", "--vault-id", "prod@pass-prod"],
    );
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("broken.yml:"), "{text}");
    assert!(
        text.contains("the file is vault-encrypted, so its text is not shown"),
        "{text}"
    );
    assert!(!text.contains("unclosed-Wq81"), "{text}");
}

#[test]
fn password_scripts_and_vault_id_clients_give_the_password() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    project(dir);
    // An executable password file prints the password; a `-client` script is asked by vault id.
    write(dir, "pass.sh", "#!/bin/sh\necho vault-pass-Yh3k\n");
    write(
        dir,
        "keys-client.sh",
        "#!/bin/sh\n[ \"$1\" = --vault-id ] || exit 3\ncase \"$2\" in prod) echo prod-pass-Qm8w ;; *) exit 2 ;; esac\n",
    );
    write(dir, "fails.sh", "#!/bin/sh\necho 'no keyring here' >&2\nexit 4\n");
    for f in ["pass.sh", "keys-client.sh", "fails.sh"] {
        let p = dir.join(f);
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (code, text) = play(
        dir,
        &["--vault-password-file", "pass.sh", "--vault-id", "prod@keys-client.sh"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out/app.env")).unwrap(),
        "db=db-secret-Xw41r\nprod=prod-db-Rt62w\ninline=inline-secret-K2p9\n"
    );
    // ansible.cfg's `vault_password_file`, relative to the file's directory (ANSIBLE_CONFIG
    // names it here; the environment variable wins over it).
    write(
        dir,
        "cfg/ansible.cfg",
        "[defaults]\n# the team's password script\nvault_password_file = ../pass.sh\n",
    );
    let out = roll(dir)
        .args([
            "play",
            "pb.yml",
            "-i",
            "hosts",
            "-e",
            "@inline.yml",
            "-e",
            "out=out",
            "--vault-id",
            "prod@keys-client.sh",
        ])
        .env("ANSIBLE_CONFIG", dir.join("cfg/ansible.cfg"))
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let (code, text) = play(dir, &["--vault-password-file", "fails.sh"]);
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains("the vault password script `fails.sh` failed (exit status: 4): no keyring here"),
        "{text}"
    );
}

/// Runs a command with a text on its standard input.
trait StdinText {
    fn stdin_text(&mut self, text: &str) -> std::io::Result<std::process::Output>;
}

impl StdinText for Command {
    fn stdin_text(&mut self, text: &str) -> std::io::Result<std::process::Output> {
        use std::io::Write as _;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().unwrap().write_all(text.as_bytes())?;
        child.wait_with_output()
    }
}

/// The pinned ansible-core venv's bin directory (made if missing, as scripts/setup does in CI):
/// this test needs ansible-vault and fails without it.
fn ansible_bin() -> PathBuf {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ansible-venv"))
        .output()
        .expect("run scripts/ansible-venv");
    assert!(
        out.status.success(),
        "scripts/ansible-venv could not make the ansible-core venv (python3-venv and PyPI are needed; scripts/setup installs them): {}",
        stderr(&out)
    );
    PathBuf::from(stdout(&out).trim())
}

#[test]
fn roll_vault_and_ansible_vault_read_each_other() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // No group_vars here: ansible would read them too.
    for f in ["pass-default", "pass-prod", "vars.yml", "vars-prod.yml"] {
        std::fs::copy(fixtures().join(f), dir.join(f)).unwrap();
    }
    let ansible_vault = ansible_bin().join("ansible-vault");
    let pw = ["--vault-password-file", "pass-default"];
    for (ids, label) in [
        (vec!["--vault-password-file", "pass-default"], None),
        (vec!["--vault-id", "prod@pass-prod"], Some("prod")),
    ] {
        // roll encrypts a file in place; ansible-vault decrypts it.
        write(dir, "plain.txt", "roll wrote this: Pq7-secret\n");
        let enc = roll(dir)
            .args(["vault", "encrypt"])
            .args(&ids)
            .arg("plain.txt")
            .output()
            .unwrap();
        assert!(enc.status.success(), "{}", stderr(&enc));
        assert_eq!(stderr(&enc), "Encryption successful\n");
        let text = std::fs::read_to_string(dir.join("plain.txt")).unwrap();
        let header = match label {
            Some(l) => format!("$ANSIBLE_VAULT;1.2;AES256;{l}\n"),
            None => "$ANSIBLE_VAULT;1.1;AES256\n".to_string(),
        };
        assert!(text.starts_with(&header), "{text}");
        assert!(!text.contains("Pq7-secret"));
        let view = Command::new(&ansible_vault)
            .current_dir(dir)
            .args(["view"])
            .args(&ids)
            .arg("plain.txt")
            .output()
            .unwrap();
        assert!(view.status.success(), "{}", stderr(&view));
        assert_eq!(stdout(&view), "roll wrote this: Pq7-secret\n");

        // roll's encrypt_string makes a `!vault` value that ansible reads in a vars file.
        let s = roll(dir)
            .args(["vault", "encrypt_string"])
            .args(&ids)
            .args(["--name", "from_roll", "string-from-roll-Ud4"])
            .output()
            .unwrap();
        assert!(s.status.success(), "{}", stderr(&s));
        let yaml = stdout(&s);
        assert!(
            yaml.starts_with("from_roll: !vault |\n          $ANSIBLE_VAULT;1."),
            "{yaml}"
        );
        write(dir, "from_roll.yml", &yaml);
        let debug = Command::new(ansible_bin().join("ansible"))
            .current_dir(dir)
            .args([
                "localhost",
                "-m",
                "debug",
                "-a",
                "var=from_roll",
                "-e",
                "@from_roll.yml",
            ])
            .args(&ids)
            .env("ANSIBLE_LOCALHOST_WARNING", "false")
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
            .output()
            .unwrap();
        assert!(debug.status.success(), "{}{}", stdout(&debug), stderr(&debug));
        assert!(
            stdout(&debug).contains("\"from_roll\": \"string-from-roll-Ud4\""),
            "{}",
            stdout(&debug)
        );

        // ansible-vault encrypts; roll decrypts and views it.
        write(dir, "theirs.txt", "ansible wrote this: Jm3-secret\n");
        let enc = Command::new(&ansible_vault)
            .current_dir(dir)
            .args(["encrypt"])
            .args(&ids)
            .arg("theirs.txt")
            .output()
            .unwrap();
        assert!(enc.status.success(), "{}", stderr(&enc));
        let view = roll(dir)
            .args(["vault", "view"])
            .args(&ids)
            .arg("theirs.txt")
            .output()
            .unwrap();
        assert!(view.status.success(), "{}", stderr(&view));
        assert_eq!(stdout(&view), "ansible wrote this: Jm3-secret\n");
        let dec = roll(dir)
            .args(["vault", "decrypt"])
            .args(&ids)
            .arg("theirs.txt")
            .output()
            .unwrap();
        assert!(dec.status.success(), "{}", stderr(&dec));
        assert_eq!(
            std::fs::read_to_string(dir.join("theirs.txt")).unwrap(),
            "ansible wrote this: Jm3-secret\n"
        );
    }
    // The fixtures decrypt with `roll vault view` too, and a wrong password says so.
    let view = roll(dir)
        .args(["vault", "view"])
        .args(pw)
        .arg("vars.yml")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&view),
        "db_password: \"db-secret-Xw41r\"\napi_token: tok-Vault-77aa\n"
    );
    let wrong = roll(dir)
        .args(["vault", "view"])
        .args(pw)
        .arg("vars-prod.yml")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(5));
    assert_eq!(
        stderr(&wrong),
        "error: cannot decrypt `vars-prod.yml`: the vault password given does not decrypt it (it was encrypted with the vault id `prod`)\n  = help: give the password of the vault id `prod`, e.g. `--vault-id prod@FILE`, or check the password file\n"
    );
}

#[test]
fn unsafe_values_are_never_templated() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "hosts", "app1 ansible_connection=local\n");
    write(
        dir,
        "pb.yml",
        r#"
- hosts: all
  vars:
    raw_text: !unsafe "{{ lookup('env', 'HOME') }} {% if x %}"
    raw_list: !unsafe ["{{ a }}", { b: "{{ c }}" }]
    uses_it: "seen: {{ raw_text }}"
  tasks:
    - debug: { var: raw_text }
    - debug: { msg: "{{ uses_it }}" }
    - debug: { msg: "{{ raw_list[1].b }} {{ raw_list | length }}" }
    - copy: { content: !unsafe "{{ not_rendered }}\n", dest: "{{ out }}/unsafe.txt" }
"#,
    );
    let out = roll(dir)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &format!("out={}", dir.display())])
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(r#""raw_text": "{{ lookup('env', 'HOME') }} {% if x %}""#),
        "{text}"
    );
    assert!(
        text.contains(r#""msg": "seen: {{ lookup('env', 'HOME') }} {% if x %}""#),
        "{text}"
    );
    assert!(text.contains(r#""msg": "{{ c }} 2""#), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("unsafe.txt")).unwrap(),
        "{{ not_rendered }}\n"
    );
}

/// `--ask-vault-pass` asks on the terminal (a pseudo-terminal from `script`, Debian package
/// bsdutils), without echoing what is typed.
#[test]
fn ask_vault_pass_reads_the_password_on_the_terminal_without_echo() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    project(dir);
    let cmd = format!(
        "{} play pb.yml -i hosts -e @inline.yml -e out=out --ask-vault-pass --vault-id prod@pass-prod",
        common::roll_bin().display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("this test needs `script` (Debian package bsdutils)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Typed once the prompt is up: the terminal's echo is off by then.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    use std::io::{Read as _, Write as _};
    while !String::from_utf8_lossy(&seen).contains("Vault password: ") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "roll ended without asking: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    stdin.write_all(b"vault-pass-Yh3k\n").unwrap();
    drop(stdin);
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(status.success(), "{text}");
    assert!(text.contains("Vault password: "), "{text}");
    assert!(!text.contains("vault-pass-Yh3k"), "the password was echoed: {text}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out/app.env")).unwrap(),
        "db=db-secret-Xw41r\nprod=prod-db-Rt62w\ninline=inline-secret-K2p9\n"
    );
}
