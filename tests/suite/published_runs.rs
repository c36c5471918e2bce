//! Real runs of the published corpus: every case whose SOURCE has a `run:` line runs here,
//! confined to a temporary directory (and, for afd-docker, the local Docker engine), twice under
//! `roll play`, exactly as scripts/compat-outputs ran it twice under ansible-playbook; each run's
//! exit status, PLAY RECAP and the files it left (listed by the script's rules) must equal what
//! ansible-playbook's did. A case whose manifest still says `roll: unsupported ...` must be
//! refused before anything runs (exit 5, those diagnostics, the directory untouched): nothing here
//! expects a case to be refused, so when a feature lands and its manifest says `roll: compared`,
//! the case is run and compared.

use crate::common;
use crate::published::{Case, Expect, cases, refusals};

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The cases that run here, by their `run:` line.
fn runnable() -> Vec<(Case, Run)> {
    cases()
        .into_iter()
        .filter_map(|c| {
            let args = c.field("run")?.to_string();
            let hook = c.field("run-hook").map(|h| c.dir.join(h));
            Some((c, Run { args, hook }))
        })
        .collect()
}

/// How a case runs: the arguments after playbook and inventory (`{tmp}` is the run's temporary
/// directory) and the hook that prepares and cleans what lies outside it.
struct Run {
    args: String,
    hook: Option<PathBuf>,
}

/// The temporary directory of a case's runs; the hook's `after` runs when it goes, also when
/// the test fails.
struct Confined {
    dir: tempfile::TempDir,
    hook: Option<PathBuf>,
}

impl Confined {
    fn new(case: &Case, run: &Run) -> Confined {
        let confined = Confined {
            dir: tempfile::tempdir().unwrap(),
            hook: run.hook.clone(),
        };
        confined.hook("before").unwrap_or_else(|e| panic!("{}: {e}", case.name));
        confined
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn hook(&self, stage: &str) -> Result<(), String> {
        let Some(hook) = &self.hook else {
            return Ok(());
        };
        let out = Command::new(hook)
            .arg(stage)
            .arg(self.path())
            .output()
            .map_err(|e| format!("{}: {e}", hook.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {stage} failed: {}",
                hook.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        let _ = self.hook("after");
    }
}

fn roll_run(case: &Case, run: &Run, tmp: &Path) -> std::process::Output {
    let tmp = tmp.to_str().unwrap();
    let extra: Vec<String> = run.args.split_whitespace().map(|a| a.replace("{tmp}", tmp)).collect();
    let mut args: Vec<&str> = vec!["play", &case.playbook, "-i", &case.inventory, "--color", "never"];
    args.extend(extra.iter().map(String::as_str));
    common::run(&case.cwd, &args)
}

/// The host lines of the PLAY RECAP in `text`, blanks normalised.
fn recap(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .take_while(|l| l.contains(" : ok="))
        .collect()
}

/// The run's outline: each banner (`PLAY [...]`, `TASK [...]`, `RUNNING HANDLER [...]`) with
/// the set of `STATUS [HOST]` its hosts got under it. A set, since Ansible prints hosts in the
/// order they finish; messages and items are left out (the PLAY RECAP and files say the rest).
fn outline(text: &str) -> Vec<(String, BTreeSet<String>)> {
    let status =
        regex::Regex::new(r"^(ok|changed|skipping|fatal|failed|unreachable|rescued|ignored): (\[[^\]]*\])").unwrap();
    let mut out: Vec<(String, BTreeSet<String>)> = Vec::new();
    for l in text.lines() {
        let banner = ["PLAY [", "TASK [", "RUNNING HANDLER ["]
            .iter()
            .any(|b| l.starts_with(b))
            && l.trim_end().ends_with(['*', ']']);
        if banner {
            out.push((l.trim_end_matches(['*', ' ']).to_string(), BTreeSet::new()));
        } else if let (Some(m), Some(last)) = (status.captures(l), out.last_mut()) {
            last.1.insert(format!("{} {}", &m[1], &m[2]));
        }
    }
    out
}

fn show_outline(o: &[(String, BTreeSet<String>)]) -> String {
    o.iter()
        .map(|(b, hosts)| format!("{b}  {}", hosts.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a timestamp name (8 or more digits and an optional `Z`, not inside a longer word)
/// starts and ends in `s`: scripts/compat-outputs' `(?<![0-9])[0-9]{8,}Z?(?![0-9A-Za-z])`.
fn stamps(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i - start < 8 {
            continue;
        }
        let end = if b.get(i) == Some(&b'Z') { i + 1 } else { i };
        if !b.get(end).is_some_and(u8::is_ascii_alphanumeric) {
            out.push(&s[start..end]);
        }
    }
    out
}

fn replace_bytes(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// What a run left under `root`, by scripts/compat-outputs' `listing` rules: one sorted line per
/// path, `d PATH`, `l PATH -> TARGET`, `f PATH sha256:HEX`, with timestamp names numbered
/// `<release-N>` (oldest first) in paths, link targets and the contents hashed.
fn listing(root: &Path) -> Vec<String> {
    enum Kind {
        Dir,
        Link(String),
        File(Vec<u8>),
    }
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Kind)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((rel, Kind::Link(target.to_string_lossy().into_owned())));
            } else if meta.is_dir() {
                out.push((rel, Kind::Dir));
                walk(root, &path, out);
            } else {
                out.push((rel, Kind::File(std::fs::read(&path).unwrap())));
            }
        }
    }
    let mut entries = Vec::new();
    walk(root, root, &mut entries);
    let mut names = BTreeSet::new();
    for (rel, kind) in &entries {
        names.extend(stamps(rel).into_iter().map(String::from));
        if let Kind::Link(t) = kind {
            names.extend(stamps(t).into_iter().map(String::from));
        }
    }
    let number: BTreeMap<String, String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), format!("<release-{}>", i + 1)))
        .collect();
    let sub = |s: &str| {
        let mut out = s.to_string();
        // Longest first, so that no name is replaced inside a longer one.
        let mut by_len: Vec<_> = stamps(s).into_iter().collect();
        by_len.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for n in by_len {
            out = out.replace(n, &number[n]);
        }
        out
    };
    let mut lines: Vec<String> = entries
        .iter()
        .map(|(rel, kind)| match kind {
            Kind::Dir => format!("d {}", sub(rel)),
            Kind::Link(t) => format!("l {} -> {}", sub(rel), sub(t)),
            Kind::File(data) => {
                let mut data = data.clone();
                let mut by_len: Vec<_> = number.iter().collect();
                by_len.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
                for (n, r) in by_len {
                    data = replace_bytes(&data, n.as_bytes(), r.as_bytes());
                }
                let hex: String = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
                format!("f {} sha256:{hex}", sub(rel))
            }
        })
        .collect();
    lines.sort();
    lines
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// Runs one case as its manifest says; what differs from ansible-playbook, if anything.
fn check(case: &Case, run: &Run) -> Result<(), String> {
    let name = &case.name;
    let tmp = Confined::new(case, run);
    match &case.expect {
        Expect::Unsupported(want) => {
            let before = listing(tmp.path());
            let out = roll_run(case, run, tmp.path());
            let got = refusals(&common::stderr(&out));
            let after = listing(tmp.path());
            if out.status.code() != Some(5) || &got != want || before != after {
                return Err(format!(
                    "{name}: its manifest says roll refuses it; a real run exited {:?} (want 5), \
                     refusals {got:?} (manifest {want:?}), files {}\n{}",
                    out.status.code(),
                    if before == after { "untouched" } else { "changed" },
                    common::stderr(&out)
                ));
            }
            Ok(())
        }
        Expect::Compared => {
            let mut diffs = Vec::new();
            let mut started: Option<Instant> = None;
            for n in 1..=2 {
                // Release names are the time to the second (ansistrano's `date -u
                // +%Y%m%d%H%M%SZ`): a second run within the same second would reuse the first's.
                if let Some(t) = started {
                    std::thread::sleep(Duration::from_millis(1100).saturating_sub(t.elapsed()));
                    // What run 1 left settles first (a container whose command exits has
                    // exited), as it had when ansible-playbook's second run was recorded.
                    if let Err(e) = tmp.hook("between") {
                        return Err(format!("{name}: {e}"));
                    }
                }
                started = Some(Instant::now());
                let out = roll_run(case, run, tmp.path());
                let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
                let run_n = format!("run{n}");
                let want_rc = case.stored(&run_n, "rc").trim().to_string();
                let got_rc = out.status.code().map_or("signal".into(), |c| c.to_string());
                let want_recap = recap(&case.stored(&run_n, "out"));
                let got_recap = recap(&format!("{stdout}\n{stderr}"));
                let want_files = lines(&case.stored(&run_n, "files"));
                let got_files = listing(tmp.path());
                let want_outline = outline(&case.stored(&run_n, "out"));
                let got_outline = outline(&format!("{stdout}\n{stderr}"));
                if got_outline != want_outline {
                    diffs.push(format!(
                        "{name} run {n}: the tasks and their hosts' statuses differ\n\
                         --- ansible-playbook\n{}\n--- roll\n{}",
                        show_outline(&want_outline),
                        show_outline(&got_outline)
                    ));
                }
                if got_rc != want_rc || got_recap != want_recap || got_files != want_files {
                    diffs.push(format!(
                        "{name} run {n}: exit {got_rc} (ansible-playbook {want_rc})\n\
                         --- ansible-playbook's PLAY RECAP\n{}\n--- roll's\n{}\n\
                         --- ansible-playbook's files\n{}\n--- roll's\n{}\n--- roll's output\n{stdout}\n{stderr}",
                        want_recap.join("\n"),
                        got_recap.join("\n"),
                        want_files.join("\n"),
                        got_files.join("\n"),
                    ));
                }
            }
            if diffs.is_empty() {
                Ok(())
            } else {
                Err(diffs.join("\n\n"))
            }
        }
    }
}

#[test]
fn the_cases_that_run_here_have_ansible_playbooks_two_runs_stored() {
    let runnable = runnable();
    let names: BTreeSet<&str> = runnable.iter().map(|(c, _)| c.name.as_str()).collect();
    for want in [
        "afd-collection-test",
        "afd-docker",
        "afd-test-plugin",
        "ansistrano-deploy",
        "ansistrano-rollback",
    ] {
        assert!(names.contains(want), "{want}/SOURCE has no `run:` line");
    }
    for (c, run) in &runnable {
        assert!(
            c.field("runs-here").is_some_and(|r| r.starts_with("yes")),
            "{}: a `run:` line, but `runs-here:` does not say yes",
            c.name
        );
        if let Some(hook) = &run.hook {
            assert!(hook.is_file(), "{}: no run-hook {}", c.name, hook.display());
        }
        for n in ["run1", "run2"] {
            let rc = c.stored(n, "rc");
            assert!(rc.trim().parse::<i32>().is_ok(), "{}: ansible/{n}.rc is `{rc}`", c.name);
            assert!(
                !recap(&c.stored(n, "out")).is_empty(),
                "{}: ansible/{n}.out has no PLAY RECAP",
                c.name
            );
            // Present even when empty: a run that writes nothing says so.
            c.stored(n, "files");
        }
    }
}

#[test]
fn roll_runs_each_case_twice_as_ansible_playbook_did_or_refuses_it_as_its_manifest_says() {
    let failures: Vec<String> = runnable().iter().filter_map(|(c, run)| check(c, run).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_listing_numbers_timestamp_names_and_hashes_contents_with_them_numbered() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (root, stamps) in [
        (a.path(), ["20260101100000Z", "20260101110000Z"]),
        (b.path(), ["20261201190000Z", "20261201190001Z"]),
    ] {
        for s in stamps {
            std::fs::create_dir_all(root.join("releases").join(s)).unwrap();
            std::fs::write(root.join("releases").join(s).join("REVISION"), s).unwrap();
        }
        std::os::unix::fs::symlink(format!("./releases/{}", stamps[1]), root.join("current")).unwrap();
    }
    let got = listing(a.path());
    assert_eq!(got, listing(b.path()));
    assert_eq!(got[0], "d releases");
    assert_eq!(got[1], "d releases/<release-1>");
    assert!(got[3].starts_with("f releases/<release-1>/REVISION sha256:"), "{got:?}");
    assert_eq!(got.last().unwrap(), "l current -> ./releases/<release-2>");
    // The same contents with the other release's name hash differently.
    assert_ne!(got[3].rsplit_once(':'), got[4].rsplit_once(':'));
    // Fewer than 8 digits, or digits inside a longer word, are not a timestamp.
    assert_eq!(
        stamps("v1234567 a20260101 20260101x 20260101Z 2026010100"),
        ["20260101", "20260101Z", "2026010100"]
    );
    assert_eq!(
        recap("x\nPLAY RECAP ****\nweb01   : ok=3  changed=1 unreachable=0\n\nafter"),
        ["web01 : ok=3 changed=1 unreachable=0"]
    );
}

/// ansistrano.deploy's `include_tasks: "update-code/{{ ansistrano_deploy_via }}.yml"`: a role's
/// task file named by a template is read when a host reaches it, and is still the role's.
#[test]
fn a_roles_task_file_included_by_a_templated_name_sees_the_roles_defaults_and_templates() {
    let d = tempfile::tempdir().unwrap();
    let w = |p: &str, text: &str| {
        let p = d.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("hosts", "localhost ansible_connection=local\n");
    w(
        "site.yml",
        "- hosts: all\n  gather_facts: false\n  vars:\n    step: write\n  roles:\n    - web\n",
    );
    w(
        "roles/web/defaults/main.yml",
        "greeting: hello from the role's defaults\n",
    );
    w(
        "roles/web/tasks/main.yml",
        "- include_tasks: \"steps/{{ step }}.yml\"\n",
    );
    w(
        "roles/web/tasks/steps/write.yml",
        "- name: Write the page\n  template:\n    src: page.j2\n    dest: \"{{ out }}/page.txt\"\n",
    );
    w("roles/web/templates/page.j2", "{{ greeting }}\n");
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = common::run(
        d.path(),
        &[
            "play",
            "site.yml",
            "-i",
            "hosts",
            "-e",
            &format!("out={}", out_dir.display()),
        ],
    );
    let log = format!("{}{}", common::stdout(&out), common::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("page.txt")).unwrap(),
        "hello from the role's defaults\n"
    );
    assert!(log.contains("TASK [web : Write the page]"), "{log}");
}

/// ansistrano.rollback's anon-stats task: `delegate_to: 127.0.0.1`, skipped. Ansible's default
/// callback shows the delegation on every line but `skipping:`.
#[test]
fn a_skipped_delegated_task_names_only_the_host_as_ansible_does() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("hosts"), "web01 ansible_connection=local\n").unwrap();
    std::fs::write(
        d.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Skipped\n      command: 'true'\n      \
         when: false\n      delegate_to: 127.0.0.1\n    - name: Run\n      command: 'true'\n      \
         delegate_to: 127.0.0.1\n",
    )
    .unwrap();
    let out = common::run(d.path(), &["play", "site.yml", "-i", "hosts"]);
    let log = format!("{}{}", common::stdout(&out), common::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_eq!(
        show_outline(&outline(&log)),
        "PLAY [all]  \nTASK [Skipped]  skipping [web01]\nTASK [Run]  changed [web01 -> 127.0.0.1]",
        "{log}"
    );
}
