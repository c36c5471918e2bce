//! Controller sources of `template` and `copy` that exist only at run time (issue 13): the
//! syntax check and the listings never look them up, as ansible-playbook does; a run refuses a
//! missing one before any host is touched, unless an earlier task may write it on the controller
//! (`fetch`, a task that runs there), and then a source still missing fails its task in
//! ansible-core 2.19's words.

use crate::common::fleet::Fleet;
use crate::common::{recap, roll, stderr, stdout, write};
use std::path::Path;
use std::process::Output;

fn play(dir: &Path, args: &[&str]) -> Output {
    roll(dir).arg("play").args(args).output().unwrap()
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// A play whose sources are missing: an absolute template, a relative copy source, and a
/// template that exists (and is still checked).
const MISSING: &str = "- hosts: all\n  gather_facts: false\n  tasks:\n\
    \x20   - name: Render the app\n      template: { src: /nonexistent/roll-index.py.j2, dest: /tmp/roll-never/index.py }\n\
    \x20   - name: Copy the pages\n      copy: { src: pages, dest: /tmp/roll-never/ }\n\
    \x20   - name: Render the config\n      template: { src: conf.j2, dest: /tmp/roll-never/conf }\n";

#[test]
fn the_syntax_check_and_listings_pass_with_a_missing_source() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // A host no one listens on: nothing here may connect.
    write(p, "hosts", "web ansible_host=127.0.0.1 ansible_port=1\n");
    write(p, "site.yml", MISSING);
    write(p, "templates/conf.j2", "port={{ port | default(80) }}\n");

    let o = play(p, &["site.yml", "-i", "hosts", "--syntax-check"]);
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(stdout(&o), "\nplaybook: site.yml\n", "{}", shown(&o));
    assert_eq!(stderr(&o), "", "{}", shown(&o));

    // As ansible-playbook 2.19 lists this playbook.
    let o = play(p, &["site.yml", "-i", "hosts", "--list-tasks"]);
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(
        stdout(&o),
        "\nplaybook: site.yml\n\n  play #1 (all): all\tTAGS: []\n    tasks:\n      Render the app\tTAGS: []\n      Copy the pages\tTAGS: []\n      Render the config\tTAGS: []\n",
    );
    for flag in ["--list-hosts", "--list-tags"] {
        let o = play(p, &["site.yml", "-i", "hosts", flag]);
        assert_eq!(o.status.code(), Some(0), "{flag}: {}", shown(&o));
        assert_eq!(stderr(&o), "", "{flag}: {}", shown(&o));
    }

    // A source that exists is still read and its Jinja checked (issue 13, point 8).
    write(p, "templates/conf.j2", "port={{ port | no_such_filter }}\n");
    let o = play(p, &["site.yml", "-i", "hosts", "--syntax-check"]);
    assert_eq!(o.status.code(), Some(5), "{}", shown(&o));
    assert!(stderr(&o).contains("no_such_filter"), "{}", shown(&o));
    assert!(!stderr(&o).contains("not found"), "{}", shown(&o));
}

#[test]
fn a_run_refuses_a_missing_source_before_any_host() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "hosts", "web ansible_host=127.0.0.1 ansible_port=1\n");
    // Tasks before the sources that write nothing on the controller: a command on the host
    // (over ssh) and `debug`, which runs on the controller but writes no file.
    let pb = MISSING.replace(
        "  tasks:\n",
        "  tasks:\n    - command: touch /tmp/roll-never-ran\n    - debug: { msg: hi }\n",
    );
    write(p, "site.yml", &pb);
    write(p, "templates/conf.j2", "port=80\n");
    for extra in [&[][..], &["--check"][..]] {
        let o = play(p, &[&["site.yml", "-i", "hosts"][..], extra].concat());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(5), "{extra:?}: {}", shown(&o));
        assert_eq!(stdout(&o), "", "{extra:?}: {}", shown(&o));
        assert!(
            err.contains("error: template `/nonexistent/roll-index.py.j2` not found\n --> site.yml:7:24"),
            "{err}"
        );
        assert!(
            err.contains("an absolute path is looked for as written, on the controller"),
            "{err}"
        );
        assert!(
            err.contains("error: copy source `pages` not found\n --> site.yml:9:20"),
            "{err}"
        );
        assert!(!err.contains("conf.j2"), "{err}");
    }
}

#[test]
fn a_file_fetched_or_written_on_the_controller_is_copied_to_another_host() {
    let f = Fleet::up(2, "srcs");
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let remote = tempfile::tempdir().unwrap();
    let r = remote.path().display().to_string();
    write(p, "hosts", &f.inventory());
    for dir in [
        remote.path().join("one"),
        remote.path().join("two"),
        p.join("templates"),
    ] {
        std::fs::create_dir(dir).unwrap();
    }
    // The loopback hosts share this machine's files: each works in its own directory.
    let pb = format!(
        "- hosts: srcs001\n  gather_facts: false\n  tasks:\n\
         \x20   - copy: {{ content: \"made on srcs001\\n\", dest: {r}/one/made.txt }}\n\
         \x20   - fetch: {{ src: {r}/one/made.txt, dest: \"{{{{ playbook_dir }}}}/fetched/\", flat: true }}\n\
         \x20   - name: Write a template on the controller\n\
         \x20     copy: {{ content: \"host={{{{ '{{{{' }}}} inventory_hostname {{{{ '}}}}' }}}}\\n\", dest: \"{{{{ playbook_dir }}}}/templates/made.j2\" }}\n\
         \x20     delegate_to: localhost\n\
         - hosts: srcs002\n  gather_facts: false\n  tasks:\n\
         \x20   - copy: {{ src: fetched/made.txt, dest: {r}/two/copied.txt }}\n\
         \x20   - template: {{ src: made.j2, dest: {r}/two/rendered.txt }}\n"
    );
    write(p, "site.yml", &pb);
    let known = f.known_hosts();
    let args = ["site.yml", "-i", "hosts", "--known-hosts", known.to_str().unwrap()];

    // Before the run, nothing is there to check: the listing and the run both accept it.
    let o = play(p, &[&args[..], &["--list-tasks"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    let o = play(p, &args);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    let recap = recap(&out);
    assert!(
        recap
            .iter()
            .any(|l| l.starts_with("srcs001") && l.contains("changed=3")),
        "{out}"
    );
    assert!(
        recap
            .iter()
            .any(|l| l.starts_with("srcs002") && l.contains("changed=2")),
        "{out}"
    );
    let read = |rel: &str| std::fs::read_to_string(remote.path().join(rel)).unwrap();
    assert_eq!(read("two/copied.txt"), "made on srcs001\n");
    assert_eq!(read("two/rendered.txt"), "host=srcs002\n");
    assert_eq!(
        std::fs::read_to_string(p.join("fetched/made.txt")).unwrap(),
        "made on srcs001\n"
    );

    // Without `fetch`: a task delegated to localhost is the only one that writes the template.
    write(
        p,
        "delegated.yml",
        &format!(
            "- hosts: srcs002\n  gather_facts: false\n  tasks:\n\
             \x20   - copy: {{ content: \"written on the controller\\n\", dest: \"{{{{ playbook_dir }}}}/templates/other.j2\" }}\n\
             \x20     delegate_to: localhost\n\
             \x20   - template: {{ src: other.j2, dest: {r}/two/other.txt }}\n"
        ),
    );
    let o = play(p, &[&["delegated.yml"][..], &args[1..]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(read("two/other.txt"), "written on the controller\n");
}

#[test]
fn a_source_an_earlier_local_task_did_not_write_fails_its_task_in_ansibles_words() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let dest = tempfile::tempdir().unwrap();
    let x = dest.path().display().to_string();
    write(p, "hosts", "localhost ansible_connection=local\n");
    // The command runs on the controller and could have written the sources; it does not.
    write(
        p,
        "site.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n\
             \x20   - command: touch {x}/first\n\
             \x20   - template: {{ src: /nonexistent/roll-index.py.j2, dest: {x}/index.py }}\n      ignore_errors: true\n\
             \x20   - copy: {{ src: pages.txt, dest: {x}/pages.txt }}\n\
             \x20   - command: touch {x}/never\n"
        ),
    );
    let o = play(p, &["site.yml", "-i", "hosts"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    assert!(dest.path().join("first").exists(), "{out}");
    assert!(!dest.path().join("never").exists(), "{out}");
    // ansible-playbook 2.19 prints the same `msg` for these tasks (paths of this directory).
    let tail = " on the Ansible Controller.\\nIf you are using a module and expect the file to exist on the remote, see the remote_src option\"}";
    assert!(
        out.contains(&format!(
            "fatal: [localhost]: FAILED! => {{\"changed\": false, \"msg\": \"Could not find or access '/nonexistent/roll-index.py.j2'{tail}\n...ignoring"
        )),
        "{out}"
    );
    let dir = p.canonicalize().unwrap().display().to_string();
    assert!(
        out.contains(&format!(
            "\"msg\": \"Could not find or access 'pages.txt'\\nSearched in:\\n\\t{dir}/files/pages.txt\\n\\t{dir}/pages.txt\\n"
        )),
        "{out}"
    );
    assert!(out.contains(tail), "{out}");
    assert!(
        recap(&out)
            .iter()
            .any(|l| l.contains("ok=2") && l.contains("failed=1") && l.contains("ignored=1")),
        "{out}"
    );
}
