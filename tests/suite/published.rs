//! The published corpus (`tests/compat/published/NAME/`, playbooks and roles kept as their
//! authors published them): for every case, roll's `--syntax-check`, `--list-tasks`,
//! `--list-hosts` and `--list-tags` print what ansible-playbook 2.19 printed (stored beside the
//! case by `scripts/compat-outputs`), compared after normalising whitespace. A case whose
//! SOURCE says `roll: unsupported FILE:LINE MESSAGE` is one roll does not read yet: roll must
//! refuse it before touching a host (exit 5), with exactly those diagnostics, so that a case
//! moves to `roll: compared` as soon as the feature it needs lands (the test then fails until
//! its manifest says so). `published_runs` reads the same cases and runs those that can run here.

use crate::common;
use crate::common::listing::normalise;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const FLAGS: [&str; 4] = ["syntax-check", "list-tasks", "list-hosts", "list-tags"];

pub(crate) fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/published")
}

/// One diagnostic roll prints: where (`file:line`) and what (the text after `error: `).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Refusal {
    pub(crate) place: String,
    pub(crate) message: String,
}

#[derive(Debug)]
pub(crate) enum Expect {
    /// roll reads the case: its listings must equal ansible-playbook's.
    Compared,
    /// roll does not read the case yet and must say why, all at once.
    Unsupported(BTreeSet<Refusal>),
}

#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) source: String,
    pub(crate) cwd: PathBuf,
    pub(crate) playbook: String,
    pub(crate) inventory: String,
    pub(crate) args: Vec<String>,
    pub(crate) expect: Expect,
}

impl Case {
    pub(crate) fn field(&self, key: &str) -> Option<&str> {
        field(&self.source, key)
    }

    /// `ansible/<flag>.<ext>`, as scripts/compat-outputs stored it.
    pub(crate) fn stored(&self, flag: &str, ext: &str) -> String {
        let p = self.dir.join("ansible").join(format!("{flag}.{ext}"));
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/compat-outputs {}", p.display(), self.name))
    }
}

fn field<'a>(source: &'a str, key: &str) -> Option<&'a str> {
    source
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

pub(crate) fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(dir.join("SOURCE")).unwrap_or_else(|e| panic!("{name}/SOURCE: {e}"));
        let need = |k: &str| {
            field(&source, k)
                .unwrap_or_else(|| panic!("{name}/SOURCE has no `{k}:` line"))
                .to_string()
        };
        let mut refusals = BTreeSet::new();
        let mut compared = false;
        for l in source.lines() {
            let Some(v) = l.strip_prefix("roll:").map(str::trim) else {
                continue;
            };
            if v == "compared" {
                compared = true;
            } else if let Some(rest) = v.strip_prefix("unsupported ") {
                let (place, message) = rest
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{name}/SOURCE: `roll: unsupported FILE:LINE MESSAGE`"));
                assert!(
                    place.contains(':'),
                    "{name}/SOURCE: `{place}` is not FILE:LINE: a refusal says where"
                );
                refusals.insert(Refusal {
                    place: place.into(),
                    message: message.into(),
                });
            } else {
                panic!("{name}/SOURCE: `roll:` is `compared` or `unsupported FILE:LINE MESSAGE`, not `{v}`");
            }
        }
        assert!(
            compared == refusals.is_empty(),
            "{name}/SOURCE: either `roll: compared` or `roll: unsupported ...` lines, not both or neither"
        );
        out.push(Case {
            cwd: dir.join(need("cwd")),
            playbook: need("playbook"),
            inventory: need("inventory"),
            args: field(&source, "args")
                .map(|a| a.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            expect: if compared {
                Expect::Compared
            } else {
                Expect::Unsupported(refusals)
            },
            name,
            dir,
            source,
        });
    }
    out
}

/// roll's diagnostics: each `error: MESSAGE` with the `--> FILE:LINE:COL` under it. An error
/// without a place gets `-`, which no manifest line can match: a refusal must say where.
pub(crate) fn refusals(stderr: &str) -> BTreeSet<Refusal> {
    let mut out = BTreeSet::new();
    let mut lines = stderr.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(message) = l.strip_prefix("error: ") else {
            continue;
        };
        if message.starts_with("aborting due to") {
            continue;
        }
        let place = lines
            .peek()
            .and_then(|n| n.trim_start().strip_prefix("--> "))
            .map_or("-", |p| p.rsplit_once(':').map_or(p, |(fl, _col)| fl))
            .to_string();
        out.insert(Refusal {
            place,
            message: message.to_string(),
        });
    }
    out
}

fn roll(case: &Case, flag: &str) -> std::process::Output {
    let mut args: Vec<&str> = vec!["play", &case.playbook, "-i", &case.inventory, "--color", "never"];
    let flag = format!("--{flag}");
    args.push(&flag);
    args.extend(case.args.iter().map(String::as_str));
    common::run(&case.cwd, &args)
}

#[test]
fn corpus_has_fifteen_cases_from_eight_authors_each_with_its_source_and_ansibles_outputs() {
    let cases = cases();
    let authors: BTreeSet<&str> = cases.iter().filter_map(|c| c.field("author")).collect();
    assert!(cases.len() >= 15, "{} cases", cases.len());
    assert!(authors.len() >= 8, "{} authors: {authors:?}", authors.len());
    for c in &cases {
        for key in ["repository", "commit", "path", "licence", "runs-here"] {
            assert!(
                c.field(key).is_some_and(|v| !v.is_empty()),
                "{}/SOURCE has no `{key}:`",
                c.name
            );
        }
        let commit = c.field("commit").unwrap();
        assert!(
            commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "{}: commit `{commit}` is not a full hash",
            c.name
        );
        assert!(
            c.cwd.join(&c.playbook).is_file(),
            "{}: no playbook {}",
            c.name,
            c.playbook
        );
        // Every case is a playbook Ansible itself accepts and lists.
        for flag in FLAGS {
            assert_eq!(
                c.stored(flag, "rc").trim(),
                "0",
                "{}: ansible-playbook --{flag} failed:\n{}",
                c.name,
                c.stored(flag, "err")
            );
            assert!(
                normalise(&c.stored(flag, "out"))
                    .iter()
                    .any(|l| l.starts_with("playbook: ")),
                "{}: ansible/{flag}.out is not a listing",
                c.name
            );
        }
    }
}

/// Each refusal in a manifest points at the line that holds what it names: the first
/// `backticked` word of the message is on that line of that file.
#[test]
fn each_recorded_refusal_names_what_is_on_its_line() {
    for c in cases() {
        let Expect::Unsupported(refusals) = &c.expect else {
            continue;
        };
        for r in refusals {
            let (file, line) = r.place.rsplit_once(':').unwrap();
            let line: usize = line.parse().unwrap_or_else(|_| panic!("{}: {}", c.name, r.place));
            let text = std::fs::read_to_string(c.cwd.join(file)).unwrap_or_else(|e| panic!("{}: {file}: {e}", c.name));
            let src = text.lines().nth(line - 1).unwrap_or_default();
            let named = r
                .message
                .split('`')
                .nth(1)
                .unwrap_or_else(|| panic!("{}: `{}` names nothing in backticks", c.name, r.message));
            assert!(
                src.contains(named),
                "{}: {} is `{src}`, which has no `{named}`",
                c.name,
                r.place
            );
        }
    }
}

#[test]
fn roll_lists_each_case_as_ansible_does_or_refuses_it_naming_what_it_lacks() {
    let mut failures = Vec::new();
    for c in cases() {
        for flag in FLAGS {
            let out = roll(&c, flag);
            let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
            match &c.expect {
                Expect::Compared => {
                    let expected = normalise(&c.stored(flag, "out"));
                    let got = normalise(&stdout);
                    if out.status.code() != Some(0) || got != expected {
                        failures.push(format!(
                            "{} --{flag}: exit {:?}\n--- ansible-playbook\n{}\n--- roll\n{}\n{stderr}",
                            c.name,
                            out.status.code(),
                            expected.join("\n"),
                            got.join("\n"),
                        ));
                    }
                }
                Expect::Unsupported(want) => {
                    let got = refusals(&stderr);
                    if out.status.code() != Some(5) || !stdout.trim().is_empty() || &got != want {
                        let lines: Vec<String> = got
                            .iter()
                            .map(|r| format!("roll: unsupported {} {}", r.place, r.message))
                            .collect();
                        failures.push(format!(
                            "{} --{flag}: exit {:?} (want 5 before any host), stdout {:?}; \
                             roll now says (SOURCE lines):\n{}\n{stderr}",
                            c.name,
                            out.status.code(),
                            stdout.trim(),
                            lines.join("\n"),
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn normalising_ignores_blank_lines_spacing_and_the_order_of_a_plays_hosts_and_tags_only() {
    let ansible = "\nplaybook: site.yml\n\n  play #1 (app): Deploy\tTAGS: [b,a]\n    pattern: ['app']\n    hosts (2):\n      app2\n      app1\n    tasks:\n      one\tTAGS: []\n      two\tTAGS: []\n\n";
    let same = "playbook: site.yml\n  play #1 (app): Deploy  TAGS: [a,b]\n    pattern: ['app']\n    hosts (2):\n      app1\n      app2\n    tasks:\n      one TAGS: []\n      two TAGS: []\n";
    assert_eq!(normalise(ansible), normalise(same));
    // Task order is meaningful, as is every word of a line.
    let swapped = same.replace("one TAGS: []\n      two", "two TAGS: []\n      one");
    assert_ne!(normalise(ansible), normalise(&swapped));
    assert_ne!(normalise(ansible), normalise(&same.replace("hosts (2)", "hosts (3)")));
    assert_ne!(
        normalise(ansible),
        normalise(&same.replace("TAGS: [a,b]", "TAGS: [a, b]"))
    );
}
