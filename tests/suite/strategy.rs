//! Play strategies: `linear` under each of its names runs as roll always runs a play (each task
//! on every host of the batch before the next); `free` and `host_pinned`, which roll's
//! scheduler does not provide, are refused at their line before any host is touched, and
//! ansible.cfg's `strategy` is warned about.

use crate::common;

use common::{recap, run, stderr, stdout, write};

const PLAY: &str = "- hosts: all\n  gather_facts: false\n  strategy: STRATEGY\n  tasks:\n    - debug: { msg: one }\n    - debug: { msg: two }\n";

fn project(strategy: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        "a ansible_connection=local\nb ansible_connection=local\n",
    );
    write(d.path(), "site.yml", &PLAY.replace("STRATEGY", strategy));
    d
}

#[test]
fn the_linear_strategy_runs_under_each_of_its_names() {
    for name in ["linear", "ansible.builtin.linear", "ansible.legacy.linear"] {
        let d = project(name);
        let o = run(d.path(), &["play", "-i", "hosts", "site.yml"]);
        let text = stdout(&o);
        assert!(o.status.success(), "{name}: {text}{}", stderr(&o));
        // Task by task: both hosts finish `one` before either starts `two`.
        let one = text.find("TASK [debug]").unwrap();
        let two = text.rfind("TASK [debug]").unwrap();
        assert!(one < two, "{text}");
        assert_eq!(text[one..two].matches("ok: [").count(), 2, "{text}");
        assert_eq!(recap(&text).len(), 2, "{text}");
    }
}

#[test]
fn free_and_host_pinned_are_refused_at_their_line_before_anything_runs() {
    for name in ["free", "host_pinned", "ansible.builtin.free"] {
        let d = project(name);
        let o = run(d.path(), &["play", "-i", "hosts", "site.yml"]);
        assert_eq!(o.status.code(), Some(5), "{name}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "error: the `{name}` strategy is not supported; roll runs plays with `linear`"
            )),
            "{err}"
        );
        assert!(err.contains("site.yml:3:13"), "{err}");
        assert!(err.contains("help: remove `strategy:`"), "{err}");
        assert!(!stdout(&o).contains("TASK"), "nothing ran: {}", stdout(&o));
    }
}

#[test]
fn a_configured_strategy_other_than_linear_is_warned_about() {
    let d = project("linear");
    let home = tempfile::tempdir().unwrap();
    write(d.path(), "ansible.cfg", "[defaults]\nstrategy = free\n");
    let o = common::roll(d.path())
        .args(["play", "-i", "hosts", "site.yml"])
        .env("HOME", home.path())
        .env_remove("ANSIBLE_STRATEGY")
        .env_remove("ANSIBLE_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("`strategy = free` is not supported: roll runs plays with the `linear` strategy"),
        "{err}"
    );
}
