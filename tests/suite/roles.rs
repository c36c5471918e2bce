//! Roles, task imports and includes, playbook imports and role variable precedence, against
//! what ansible-playbook (ansible-core 2.19.14) printed for the same files.
//!
//! Each directory under `tests/roles/` with a `cases` file is a project; each line of `cases`
//! is `NAME: ARG;ARG;...`, and `NAME.ansible` is what `ansible-playbook ARGS` printed there
//! (`tests/roles/regenerate.sh` writes them; the fixture's directory reads `<DIR>`). roll's
//! `roll play ARGS` must print the same, line for line, trailing spaces aside. A project's `env`
//! file (`KEY=VALUE` lines) is the environment of both.

use crate::common;

use std::path::Path;

fn normalise(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_string()).collect()
}

/// Run every stored case of one project and compare it with Ansible's output.
fn cases(project: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/roles").join(project);
    let dir = dir.canonicalize().unwrap();
    let list = std::fs::read_to_string(dir.join("cases")).unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let (name, args) = line.split_once(':').unwrap();
        let mut argv: Vec<&str> = vec!["play"];
        argv.extend(args.trim_start().split(';'));
        let mut cmd = common::roll(&dir);
        cmd.args(&argv).env_remove("ANSIBLE_ROLES_PATH");
        // The project's `env` file (KEY=VALUE lines), as regenerate.sh gives it to ansible.
        for kv in std::fs::read_to_string(dir.join("env")).unwrap_or_default().lines() {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().unwrap();
        let got = common::stdout(&out).replace(&dir.display().to_string(), "<DIR>");
        let expected = std::fs::read_to_string(dir.join(format!("{name}.ansible"))).unwrap();
        n += 1;
        if normalise(&got) != normalise(&expected) {
            failures.push(format!(
                "[{project}/{name}] roll {}\n--- ansible-playbook\n{expected}\n--- roll (exit {:?})\n{got}\n{}",
                argv.join(" "),
                out.status.code(),
                common::stderr(&out)
            ));
        }
    }
    assert!(n > 0, "no cases in tests/roles/{project}/cases");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// pre_tasks, their handlers, roles after their dependencies (a dependency that already ran
/// is skipped, the same role with other params runs again), tasks with static imports
/// (`when`/`tags` inherited), dynamic includes (templated names, loops), `import_role`,
/// `include_role` with `tasks_from` and `when`, role handlers, post_tasks; nested
/// `import_playbook` with `vars`; `vars_files` first found; role `vars/main/` directories.
#[test]
fn roles_and_includes_run_in_ansibles_order() {
    cases("order");
}

/// A role's `meta/argument_specs` are checked by the task Ansible puts first in the role, against
/// every variable the task sees (an inventory variable satisfies `required`), listed and run as
/// ansible-playbook does.
#[test]
fn role_argument_specs_are_validated_by_the_roles_first_task() {
    cases("argspec");
}

/// What that task reports when validation fails: a missing argument, a wrong type and choice,
/// a param the spec does not name; `bad.ansible` holds the `fatal:` line ansible-playbook
/// printed for each play (`-l web4`, `web2`, `web3`).
#[test]
fn a_role_argument_that_fails_its_spec_fails_as_in_ansible() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/roles/argspec");
    let want = std::fs::read_to_string(dir.join("bad.ansible")).unwrap();
    let mut got = String::new();
    for host in ["web4", "web2", "web3"] {
        let out = common::run(&dir, &["play", "-i", "hosts", "bad.yml", "-l", host]);
        assert_eq!(out.status.code(), Some(2), "{host}: {}", common::stderr(&out));
        let text = common::stdout(&out).replace(&dir.display().to_string(), "<DIR>");
        got.extend(
            text.lines()
                .filter(|l| l.starts_with("fatal:"))
                .map(|l| format!("{l}\n")),
        );
    }
    assert_eq!(normalise(&got), normalise(&want));
}

/// Nested `options` of a `dict` argument and of a `list` of `dict`s, validated level by level
/// as ArgumentSpecValidator does: `nested.ansible` holds the `fatal:` line ansible-playbook
/// printed for `nested.yml` (web1 passes; web2 has a missing, a mistyped, an unknown name and an
/// off-choice value at each level, and a list element that is no mapping).
#[test]
fn nested_role_argument_options_fail_as_in_ansible() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/roles/argspec");
    let want = std::fs::read_to_string(dir.join("nested.ansible")).unwrap();
    let out = common::run(&dir, &["play", "-i", "hosts", "nested.yml"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    let text = common::stdout(&out).replace(&dir.display().to_string(), "<DIR>");
    let got: String = text
        .lines()
        .filter(|l| l.starts_with("fatal:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(normalise(&got), normalise(&want), "{text}");
    let recap = common::recap(&text);
    assert!(
        recap.iter().any(|l| l.starts_with("web1") && l.contains("ok=2")),
        "{text}"
    );
}

/// A role named by a template (`roles: ["{{ role_name | default('app') }}"]`) is the role its
/// value names when the play is read: the default, a play var, then `-e`, as ansible-playbook
/// lists it; a name that renders to nothing known is refused at its line.
#[test]
fn a_templated_role_name_is_rendered_with_play_and_extra_vars() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for r in ["app", "web", "cli"] {
        common::write(
            p,
            &format!("roles/{r}/tasks/main.yml"),
            &format!("- name: in {r}\n  debug: {{ msg: {r} }}\n"),
        );
    }
    common::write(
        p,
        "site.yml",
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - \"{{ role_name | default('app') }}\"\n- hosts: localhost\n  gather_facts: false\n  vars: { base: web, which: \"{{ base }}\" }\n  roles:\n    - role: \"{{ which }}\"\n  tasks:\n    - import_role: { name: \"{{ which }}\" }\n",
    );
    let list = |extra: &[&str]| {
        let mut argv = vec!["play", "site.yml", "-i", "localhost,", "--list-tasks"];
        argv.extend_from_slice(extra);
        let o = common::run(p, &argv);
        assert!(o.status.success(), "{}", common::stderr(&o));
        common::stdout(&o)
    };
    let text = list(&[]);
    assert!(text.contains("app : in app"), "{text}");
    assert_eq!(text.matches("web : in web").count(), 2, "{text}");
    // Extra vars win over play vars, as they do everywhere.
    let text = list(&["-e", "role_name=cli", "-e", "which=cli"]);
    assert!(
        text.contains("cli : in cli") && !text.contains("in app") && !text.contains("in web"),
        "{text}"
    );
    let o = common::run(
        p,
        &[
            "play",
            "site.yml",
            "-i",
            "localhost,",
            "--syntax-check",
            "-e",
            "role_name=nope",
        ],
    );
    assert_eq!(o.status.code(), Some(5));
    let err = common::stderr(&o);
    assert!(err.contains("error: the role `nope` was not found"), "{err}");
    assert!(err.contains("site.yml:4:7"), "{err}");
}

/// Which of the places a variable is set in wins, row by row, as ansible-playbook decided.
#[test]
fn role_variable_precedence_matches_ansible() {
    cases("precedence");
}

/// `include_vars` of a file, a directory (`files_matching`, `depth`), under one `name`, and
/// with `with_first_found` in a role's `vars/`; included vars above play and task vars, below
/// `set_fact`.
#[test]
fn include_vars_reads_files_directories_and_the_first_found() {
    cases("include_vars");
}

/// A role over the loopback fleet: its dependency first, its `templates/` and `files/` found in
/// the role, its defaults below the entry's params, an imported task file, its handler; the
/// second run changes nothing. Both PLAY RECAPs equal ansible-playbook's
/// (`tests/roles/fleet/regenerate.sh`), and the files are what the role writes.
#[test]
fn a_role_deploys_over_the_fleet_and_the_second_run_changes_nothing() {
    let f = common::fleet::Fleet::up(2, "rol");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/roles/fleet");
    let d = tempfile::tempdir().unwrap();
    common::copy_dir(&src, d.path());
    common::write(d.path(), "hosts", &f.inventory());
    let base = tempfile::tempdir().unwrap();
    for run in ["run1", "run2"] {
        let out = common::roll(d.path())
            .args(["play", "site.yml", "-i", "hosts", "-f", "1", "--known-hosts"])
            .arg(f.known_hosts())
            .args(["-e", &format!("base={}", base.path().display())])
            .output()
            .unwrap();
        let text = common::stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}\n{}", common::stderr(&out));
        let expected: Vec<String> = std::fs::read_to_string(src.join(format!("recap-{run}.ansible")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(common::recap(&text), expected, "{run}:\n{text}");
        assert!(text.contains("TASK [dirs : the host's directory]"), "{text}");
        assert!(
            text.contains("RUNNING HANDLER [app : restart app]") == (run == "run1"),
            "{text}"
        );
    }
    for h in ["rol001", "rol002"] {
        let conf = std::fs::read_to_string(base.path().join(h).join("app.conf")).unwrap();
        assert_eq!(conf, format!("name = demo\nport = 9000\nhost = {h}\n"));
        let motd = std::fs::read_to_string(base.path().join(h).join("motd")).unwrap();
        assert_eq!(motd, "managed by a role\n");
        assert!(base.path().join(h).join("restarted").exists());
    }
}

/// Templated `serial` and `max_fail_percentage`, `order`, `throttle`, `notify` on a block,
/// `meta: end_role` in an included role and `meta: end_batch`.
#[test]
fn play_keywords_and_meta_actions_match_ansible() {
    cases("keywords");
}

/// Roles found in `roles/`, in `ANSIBLE_ROLES_PATH`, beside their parent (a dependency) and as
/// `ns.coll.role` under `collections/ansible_collections/`, with `tasks_from`.
#[test]
fn roles_are_found_where_ansible_finds_them() {
    cases("search");
}
