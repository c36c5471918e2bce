//! `roll play` end to end over the local connection: check/diff, idempotency, handlers,
//! serial, loops, retries, tags, limits, listings, extra vars, exit codes and output streams.

use crate::common;

use common::{recap, run, stderr, stdout, write};
use std::path::Path;

const LOCAL: &str =
    "[app]\napp1 ansible_connection=local\napp2 ansible_connection=local\napp3 ansible_connection=local\n";

fn setup(playbook: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", LOCAL);
    write(d.path(), "pb.yml", playbook);
    d
}

fn play(d: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["play", "pb.yml", "-i", "hosts"];
    args.extend_from_slice(extra);
    run(d, &args)
}

const FILES: &str = r#"
- hosts: app
  vars: { root: "{{ playbook_dir }}/out/{{ inventory_hostname }}" }
  tasks:
    - file: { path: "{{ root }}", state: directory }
    - template: { src: t.j2, dest: "{{ root }}/app.conf", mode: "0640" }
    - copy: { content: "static\n", dest: "{{ root }}/static" }
    - file: { src: app.conf, path: "{{ root }}/link", state: link }
    - file: { path: "{{ root }}/gone", state: absent }
    - command: echo hello
"#;

#[test]
fn check_diff_changes_nothing_and_predicts_the_real_run() {
    let d = setup(FILES);
    write(
        d.path(),
        "templates/t.j2",
        "host={{ inventory_hostname }}\nport={{ port | default(80) }}\n",
    );
    write(d.path(), "out/app1/app.conf", "host=app1\nport=1\n");
    write(d.path(), "out/app1/gone", "old\n");
    let before = common::tree(d.path());
    let check = play(d.path(), &["--check", "--diff"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert_eq!(common::tree(d.path()), before, "--check changed files");
    let check_out = stdout(&check);
    assert!(
        check_out.contains("changed: [app1] => (would run) echo hello"),
        "{check_out}"
    );
    let real = play(d.path(), &["--diff"]);
    assert_eq!(real.status.code(), Some(0));
    let real_out = stdout(&real);
    let diffs = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                l.starts_with("--- ")
                    || l.starts_with("+++ ")
                    || l.starts_with("@@")
                    || l.starts_with('+')
                    || l.starts_with('-')
            })
            .map(str::to_string)
            .collect()
    };
    assert!(!diffs(&check_out).is_empty());
    assert_eq!(diffs(&check_out), diffs(&real_out));
    assert!(
        check_out.contains(&format!(
            "--- before: {}/out/app1/app.conf",
            d.path().canonicalize().unwrap().display()
        )),
        "{check_out}"
    );
    // The same recap counts: check mode counts what would change.
    assert_eq!(recap(&check_out), recap(&real_out));
    // Each change with its symbol, and the tally.
    assert!(
        check_out.contains(&format!(
            "    + {}/out/app2/app.conf",
            d.path().canonicalize().unwrap().display()
        )),
        "{check_out}"
    );
    assert!(
        check_out.contains(&format!(
            "    ~ {}/out/app1/app.conf",
            d.path().canonicalize().unwrap().display()
        )),
        "{check_out}"
    );
    assert!(
        check_out.contains("Dry run: 10 to add, 1 to change, 0 to replace, 1 to remove."),
        "{check_out}"
    );
    assert!(!real_out.contains("Dry run:"), "{real_out}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("out/app2/app.conf")).unwrap(),
        "host=app2\nport=80\n"
    );
    assert!(!d.path().join("out/app1/gone").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("out/app3/app.conf"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
    // Second run: files converge, only the command changes.
    let again = play(d.path(), &[]);
    let r = recap(&stdout(&again));
    assert!(r.iter().all(|l| l.contains("changed=1 ")), "{r:?}");
}

#[test]
fn handlers_run_once_per_host_in_definition_order_and_not_on_failed_hosts() {
    let d = setup(
        r#"
- hosts: app
  tasks:
    - command: "true"
      notify: [second, first]
    - command: "true"
      notify: first
    - fail: { msg: boom }
      when: inventory_hostname == 'app2'
  handlers:
    - name: first
      debug: { msg: "first on {{ inventory_hostname }}" }
    - name: second
      debug: { msg: second }
      listen: topic
"#,
    );
    let out = play(d.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    let first = text.find("RUNNING HANDLER [first]").unwrap();
    let second = text.find("RUNNING HANDLER [second]").unwrap();
    assert!(first < second, "{text}");
    assert_eq!(text.matches("RUNNING HANDLER [first]").count(), 1);
    assert!(!text.contains("first on app2"), "{text}");
    assert!(text.contains("first on app1") && text.contains("first on app3"));
    let forced = play(d.path(), &["--force-handlers"]);
    assert!(stdout(&forced).contains("first on app2"));
}

#[test]
fn serial_batches_and_max_fail_percentage() {
    let d = setup(
        r#"
- hosts: app
  serial: [1, "50%"]
  max_fail_percentage: 0
  tasks:
    - debug: { msg: "batch {{ ansible_play_batch | join(',') }}" }
    - fail: { msg: stop }
      when: inventory_hostname == 'app2'
"#,
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(text.contains("\"msg\": \"batch app1\""), "{text}");
    assert!(text.contains("\"msg\": \"batch app2\""), "{text}");
    // app2's batch failed past the threshold: app3's batch never starts.
    assert!(!text.contains("app3"), "{text}");
    assert_eq!(text.matches("PLAY [app]").count(), 2);
}

#[test]
fn loops_register_until_and_conditions() {
    let d = setup(
        r#"
- hosts: app1
  tasks:
    - shell: "echo {{ item.key }}={{ item.value }}"
      with_dict: { a: 1, b: 2 }
      register: pairs
    - assert:
        that:
          - pairs.results | length == 2
          - pairs.results[1].stdout == "b=2"
          - pairs.changed
    - shell: "n=$(cat {{ playbook_dir }}/count 2>/dev/null || echo 0); echo $((n+1)) > {{ playbook_dir }}/count; cat {{ playbook_dir }}/count"
      register: counter
      until: counter.stdout | int >= 3
      retries: 5
      delay: 0
    - assert: { that: ["counter.attempts == 3"] }
    - command: echo {{ item }}
      loop: [1, 2, 3]
      when: item != 2
      register: filtered
    - assert: { that: ["filtered.results | selectattr('skipped') | list | length == 1"] }
    - command: "false"
      register: bad
      failed_when: false
      changed_when: bad.rc == 1
    - assert: { that: ["bad is changed", "bad is not failed"] }
"#,
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches("FAILED - RETRYING: [app1]").count(), 2, "{text}");
    assert!(text.contains("skipping: [app1] => (item=2) "), "{text}");
}

#[test]
fn tags_limit_start_at_task_and_listings() {
    let d = setup(
        r#"
- name: tagged
  hosts: app
  tasks:
    - name: one
      debug: { msg: one }
      tags: [web]
    - name: two
      debug: { msg: two }
    - name: three
      debug: { msg: three }
      tags: [never, debugonly]
    - name: four
      debug: { msg: four }
      tags: always
"#,
    );
    let names = |o: &std::process::Output| -> Vec<String> {
        stdout(o)
            .lines()
            .filter(|l| l.starts_with("TASK ["))
            .map(|l| l.split(']').next().unwrap()[6..].to_string())
            .collect()
    };
    // Gathering facts (the play does not turn it off) is tagged `always`, as in Ansible.
    let g = "Gathering Facts";
    assert_eq!(names(&play(d.path(), &[])), [g, "one", "two", "four"]);
    assert_eq!(names(&play(d.path(), &["--tags", "web"])), [g, "one", "four"]);
    assert_eq!(names(&play(d.path(), &["--tags", "debugonly"])), [g, "three", "four"]);
    assert_eq!(names(&play(d.path(), &["--skip-tags", "web,always"])), ["two"]);
    // As ansible-core's `evaluate_tags`: skipping `all` leaves only `always`, `tagged` leaves
    // out `never`, and `untagged` is what carries no tag.
    assert_eq!(names(&play(d.path(), &["--skip-tags", "all"])), [g, "four"]);
    assert_eq!(names(&play(d.path(), &["--tags", "tagged"])), [g, "one", "four"]);
    assert_eq!(names(&play(d.path(), &["--tags", "untagged"])), [g, "two", "four"]);
    assert_eq!(names(&play(d.path(), &["--skip-tags", "untagged"])), [g, "one", "four"]);
    // The play that holds the start task gathers its facts first (as ansible-core 2.19 does).
    assert_eq!(names(&play(d.path(), &["--start-at-task", "two"])), [g, "two", "four"]);
    let limited = play(d.path(), &["--limit", "app[1:]"]);
    assert_eq!(recap(&stdout(&limited)).len(), 2);
    let listing = play(
        d.path(),
        &["--list-hosts", "--list-tasks", "--list-tags", "-l", "app1,app3"],
    );
    assert_eq!(
        stdout(&listing),
        "\nplaybook: pb.yml\n\n  play #1 (app): tagged\tTAGS: []\n    pattern: ['app']\n    hosts (2):\n      app1\n      app3\n    tasks:\n      one\tTAGS: [web]\n      two\tTAGS: []\n      three\tTAGS: [debugonly, never]\n      four\tTAGS: [always]\n      TASK TAGS: [always, debugonly, never, web]\n"
    );
    let syntax = play(d.path(), &["--syntax-check"]);
    assert_eq!(
        (syntax.status.code(), stdout(&syntax)),
        (Some(0), "\nplaybook: pb.yml\n".to_string())
    );
}

#[test]
fn extra_vars_in_every_form_win_over_everything() {
    let d = setup(
        r#"
- hosts: app1
  vars: { a: play, b: play, c: play }
  tasks:
    - set_fact: { a: fact }
    - debug: { msg: "{{ a }}-{{ b }}-{{ c }}" }
"#,
    );
    write(d.path(), "extra.yml", "c: file\n");
    let out = play(d.path(), &["-e", "a=kv", "-e", "{\"b\": \"json\"}", "-e", "@extra.yml"]);
    assert!(stdout(&out).contains("\"msg\": \"kv-json-file\""), "{}", stdout(&out));
}

#[test]
fn block_rescue_always_and_run_once_delegate() {
    let d = setup(
        r#"
- hosts: app
  tasks:
    - block:
        - command: "false"
          when: inventory_hostname != 'app1'
        - debug: { msg: not after failure }
      rescue:
        - debug: { msg: "rescued {{ inventory_hostname }}" }
      always:
        - debug: { msg: always }
    - command: hostname
      delegate_to: localhost
      run_once: true
      register: who
    - assert: { that: ["who.rc == 0"] }
"#,
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("[app1 -> localhost]"), "{text}");
    let r = recap(&text);
    assert!(
        r[1].contains("rescued=1") && r[2].contains("rescued=1") && r[0].contains("rescued=0"),
        "{r:?}"
    );
    assert!(r.iter().all(|l| l.contains("failed=0")));
}

#[test]
fn failed_and_unreachable_hosts_set_exit_codes_and_others_go_on() {
    let d = setup("- hosts: all\n  tasks:\n    - command: \"true\"\n    - debug: { msg: done }\n");
    write(
        d.path(),
        "hosts",
        "app1 ansible_connection=local\nghost ansible_connection=winrm\n",
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("fatal: [ghost]: UNREACHABLE!"), "{text}");
    assert!(text.contains("ok: [app1] => {"), "{text}");
    let failing = setup("- hosts: app1\n  tasks:\n    - command: \"false\"\n");
    assert_eq!(play(failing.path(), &[]).status.code(), Some(2));
}

#[test]
fn runtime_template_errors_point_at_the_yaml_value() {
    let d = setup(
        "- hosts: app1\n  vars:\n    conf: { port: 1 }\n  tasks:\n    - debug:\n        msg: \"{{ conf.prot }}\"\n",
    );
    let out = play(d.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out)
            .contains("\"msg\": \"`conf` has no attribute `prot` (at pb.yml:6:14); did you mean `conf.port`?\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn json_events_go_to_stdout_and_stderr_stays_clean() {
    let d = setup("- hosts: app1\n  gather_facts: false\n  tasks:\n    - command: echo hi\n");
    let out = play(d.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let events: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "run_start",
            "play_start",
            "task_start",
            "host",
            "task_end",
            "recap",
            "run_end"
        ]
    );
    assert_eq!(events[3]["result"]["stdout"], "hi");
    assert!(events.iter().all(|e| e["v"] == 1));
}

#[test]
fn wait_for_uri_and_pause_run_from_the_target() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in listener.incoming().take(4) {
            let mut s = s.unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"up\": true}");
        }
    });
    let d = setup(&format!(
        r#"
- hosts: app1
  gather_facts: false
  tasks:
    - wait_for: {{ port: {port}, timeout: 5 }}
    - uri: {{ url: "http://127.0.0.1:{port}/health", return_content: true }}
      register: health
    - assert: {{ that: ["health.status == 200", "health.json.up"] }}
    - pause: {{ seconds: 0.2 }}
    - pause: {{}}
    - wait_for: {{ port: 1, timeout: 1 }}
"#
    ));
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("Timeout when waiting for 127.0.0.1:1"), "{text}");
    assert!(recap(&text)[0].contains("ok=5"), "{text}");
}

#[test]
fn inventory_list_graph_and_host_match_ansible_inventory() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "inv.ini",
        "[app]\napp[1:2] ansible_port=2222\n[proxy]\np1\n[web:children]\napp\n[web:vars]\nx=1\n[all:vars]\ny=2\n",
    );
    let list = run(d.path(), &["inventory", "-i", "inv.ini", "--list"]);
    let got: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let want = serde_json::json!({
        "_meta": {"hostvars": {
            "app1": {"ansible_port": 2222, "x": 1, "y": 2},
            "app2": {"ansible_port": 2222, "x": 1, "y": 2},
            "p1": {"y": 2}}},
        "all": {"children": ["ungrouped", "proxy", "web"]},
        "app": {"hosts": ["app1", "app2"]},
        "proxy": {"hosts": ["p1"]},
        "web": {"children": ["app"]}
    });
    assert_eq!(got, want);
    let graph = run(d.path(), &["inventory", "-i", "inv.ini", "--graph"]);
    assert_eq!(
        stdout(&graph),
        "@all:\n  |--@ungrouped:\n  |--@proxy:\n  |  |--p1\n  |--@web:\n  |  |--@app:\n  |  |  |--app1\n  |  |  |--app2\n"
    );
    let host = run(d.path(), &["inventory", "-i", "inv.ini", "--host", "app1"]);
    assert_eq!(
        stdout(&host),
        "{\n    \"ansible_port\": 2222,\n    \"x\": 1,\n    \"y\": 2\n}\n"
    );
}

#[test]
fn completions_are_generated() {
    let d = tempfile::tempdir().unwrap();
    let out = run(d.path(), &["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("complete -F _roll"), "{}", stdout(&out));
}

#[test]
fn shell_metacharacters_in_arguments_arrive_byte_exact() {
    let d = setup(
        r#"
- hosts: app1
  vars:
    nasty: "it's \"quoted\" $(echo no) `echo no` ; rm -rf / # ünï ☃"
  tasks:
    - command: printf %s {{ nasty | quote }}
      register: out
    - copy: { content: "{{ nasty }}", dest: "{{ playbook_dir }}/nasty.txt" }
    - assert: { that: ["out.stdout == nasty"] }
"#,
    );
    let out = play(d.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(d.path().join("nasty.txt")).unwrap(),
        "it's \"quoted\" $(echo no) `echo no` ; rm -rf / # ünï ☃"
    );
}

#[test]
fn no_log_timeout_environment_become_and_verbose() {
    let d = setup(
        r#"
- hosts: app1
  gather_facts: true
  tasks:
    - command: echo s3cr3t-value
      no_log: true
      register: hidden
    - command: sleep 5
      timeout: 1
      ignore_errors: true
    - shell: echo "$GREETING"
      environment: { GREETING: "hello env" }
      register: env_out
    - command: id -un
      become: true
      register: who
    - assert:
        that:
          - env_out.stdout == "hello env"
          - who.stdout == ansible_user_id
          - hidden.stdout == "s3cr3t-value"
"#,
    );
    let out = play(d.path(), &["-v"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("s3cr3t-value"), "{text}");
    assert!(text.contains("the output has been hidden"), "{text}");
    assert!(text.contains("command timed out after 1 s and was killed"), "{text}");
    assert!(text.contains("\"stdout\": \"hello env\""), "-v shows results: {text}");
    assert!(text.contains("TASK [Gathering Facts]"), "{text}");
}

/// A `no_log` loop shows each item censored, and no line for the loop as a whole, as
/// ansible-core 2.19's default callback prints it (checked with ansible-playbook).
#[test]
fn a_no_log_loop_shows_each_item_censored_and_no_summary_line() {
    let d = setup(
        r#"
- hosts: app1
  gather_facts: false
  tasks:
    - command: echo {{ item }}-s3cr3t
      loop: [a, b]
      no_log: true
    - command: "false"
      loop: [a]
      no_log: true
      ignore_errors: true
"#,
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let hidden = "{\"censored\": \"the output has been hidden due to the fact that 'no_log: true' was specified for this result\", \"changed\": true}";
    let want = format!(
        "TASK [command] *****************************************************************\n\
         changed: [app1] => (item=(censored due to no_log))\n\
         changed: [app1] => (item=(censored due to no_log))\n\
         \n\
         TASK [command] *****************************************************************\n\
         failed: [app1] (item=(censored due to no_log)) => {hidden}\n\
         ...ignoring\n"
    );
    assert!(text.contains(&want), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}

#[test]
fn any_errors_fatal_stops_every_host() {
    let d = setup(
        "- hosts: app\n  any_errors_fatal: true\n  tasks:\n    - fail: { msg: boom }\n      when: inventory_hostname == 'app2'\n    - debug: { msg: after }\n",
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(!text.contains("after"), "{text}");
}

#[test]
fn sigint_finishes_the_current_task_then_stops_with_130() {
    let d = setup(
        "- hosts: app1\n  tasks:\n    - pause: { seconds: 2 }\n    - copy: { content: x, dest: \"{{ playbook_dir }}/after\" }\n",
    );
    let mut cmd = common::roll(d.path());
    cmd.args(["play", "pb.yml", "-i", "hosts"]);
    let mut run = common::Watched::spawn(cmd);
    run.wait_for("TASK [pause]");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &run.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let (code, out, err) = run.finish();
    assert_eq!(code, Some(130), "{out}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!d.path().join("after").exists(), "a task after the interrupt ran");
    assert!(out.contains("PLAY RECAP"), "the recap is still printed");
}

#[test]
fn shipped_playbooks_check_clean_against_the_example_inventories() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (pb, inv) in [
        ("playbooks/deploy.yml", "staging"),
        ("playbooks/deploy.yml", "prod"),
        ("playbooks/deploy.yml", "sandbox"),
        ("playbooks/rollback.yml", "staging"),
        ("playbooks/rollback.yml", "prod"),
        ("playbooks/rollback.yml", "sandbox"),
        ("playbooks/sandbox.yml", "sandbox"),
    ] {
        // A deploy names its release (there is no default: `rollback::a_deploy_without_a_release...`).
        let out = run(root, &["play", pb, "-i", inv, "--syntax-check", "-e", "release=1"]);
        assert_eq!(out.status.code(), Some(0), "{pb} -i {inv}: {}", stderr(&out));
    }
    let hosts = run(
        root,
        &[
            "play",
            "playbooks/deploy.yml",
            "-i",
            "prod",
            "--list-hosts",
            "-e",
            "release=1",
        ],
    );
    let text = stdout(&hosts);
    assert_eq!(text.matches("    hosts (20):").count(), 2, "{text}");
    assert_eq!(text.matches("    hosts (2):").count(), 2, "{text}");
}

#[test]
fn end_play_ends_only_its_play_and_only_when_its_condition_holds() {
    let d = setup(
        "- hosts: app\n  tasks:\n    - meta: end_play\n      when: stop_first | default(false)\n    - debug: { msg: first-play-ran }\n\
         - hosts: app\n  tasks:\n    - meta: end_play\n      when: inventory_hostname == 'app2'\n    - debug: { msg: second-play-ran }\n\
         - hosts: app\n  tasks:\n    - debug: { msg: third-play-ran }\n",
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("first-play-ran"),
        "a false condition must not end the play: {text}"
    );
    assert!(
        !text.contains("second-play-ran"),
        "a condition true for one host ends the play: {text}"
    );
    assert!(
        text.contains("third-play-ran"),
        "end_play ends only its own play: {text}"
    );
    assert_eq!(
        text.matches("TASK [meta]").count(),
        2,
        "each meta task is announced once: {text}"
    );
}

#[test]
fn delegate_to_is_rendered_for_each_loop_item() {
    let d = setup(
        "- hosts: app1\n  tasks:\n    - command: echo {{ item }}\n      delegate_to: \"{{ item }}\"\n      loop: [app2, app3]\n",
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("changed: [app1 -> app2] => (item=app2)"), "{text}");
    assert!(text.contains("changed: [app1 -> app3] => (item=app3)"), "{text}");
}

#[test]
fn any_errors_fatal_lets_a_rescue_run_first() {
    let d = setup(
        "- hosts: app\n  any_errors_fatal: true\n  tasks:\n    - block:\n        - fail: { msg: boom }\n          when: inventory_hostname == 'app2'\n      rescue:\n        - debug: { msg: \"rescued-{{ inventory_hostname }}\" }\n        - fail: { msg: still-failing }\n    - debug: { msg: after }\n",
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("rescued-app2"),
        "the rescue runs before the run stops: {text}"
    );
    assert!(text.contains("still-failing"), "{text}");
    assert!(
        !text.contains("\"msg\": \"after\""),
        "the failure in the rescue is fatal: {text}"
    );
}

#[test]
fn ping_answers_through_the_hosts_connection_and_debug_needs_none() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "hosts",
        "[app]\napp1 ansible_connection=local\napp2 ansible_connection=winrm\n",
    );
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: app
  gather_facts: false
  tasks:
    - debug: { msg: "before {{ inventory_hostname }}" }
    - ansible.builtin.ping: { data: hello }
      register: p
    - debug: { msg: "{{ p.ping }}" }
"#,
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}{}", stderr(&out));
    // debug runs on the controller, so a host roll cannot connect to still shows it.
    assert!(text.contains("\"msg\": \"before app2\""), "{text}");
    assert!(text.contains("fatal: [app2]: UNREACHABLE!"), "{text}");
    assert!(text.contains("`winrm` connection"), "{text}");
    assert!(text.contains("\"msg\": \"hello\""), "{text}");
    let rows = recap(&text);
    assert!(rows[0].starts_with("app1") && rows[0].contains("ok=3 "), "{rows:?}");
    assert!(
        rows[1].starts_with("app2") && rows[1].contains("unreachable=1"),
        "{rows:?}"
    );
}

#[test]
fn out_of_range_durations_fail_the_task_instead_of_panicking() {
    let d = setup(
        r#"
- hosts: app1
  gather_facts: false
  tasks:
    - debug: { msg: "{{ item }}" }
      loop: [a, b]
      loop_control: { pause: "1e300" }
      ignore_errors: true
    - pause: { seconds: "1e300" }
      ignore_errors: true
    - pause: { seconds: -1 }
"#,
    );
    let out = play(d.path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    assert!(
        text.contains("`loop_control.pause` must be a number of seconds"),
        "{text}"
    );
    assert!(text.contains("`seconds`: `1e300` is not a number of seconds"), "{text}");
    assert!(text.contains("`seconds`: `-1.0` is not a number of seconds"), "{text}");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// Editors on Windows start UTF-8 files with a byte order mark: a playbook, an inventory (INI
/// or YAML), `group_vars`, `vars_files` and `-e @file` that begin with one read as without it.
#[test]
fn a_utf8_byte_order_mark_is_ignored_in_every_input_file() {
    const BOM: &str = "\u{feff}";
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let playbook =
        "- hosts: app\n  vars_files: [vars.yml]\n  tasks:\n    - debug: { msg: \"{{ g }}-{{ f }}-{{ e }}\" }\n";
    write(dir, "pb.yml", &format!("{BOM}{playbook}"));
    write(dir, "hosts", &format!("{BOM}[app]\napp1 ansible_connection=local\n"));
    write(
        dir,
        "hosts.yml",
        &format!("{BOM}all:\n  children:\n    app:\n      hosts:\n        app1: {{ ansible_connection: local }}\n"),
    );
    write(dir, "group_vars/app.yml", &format!("{BOM}g: group\n"));
    write(dir, "vars.yml", &format!("{BOM}f: file\n"));
    write(dir, "extra.yml", &format!("{BOM}e: extra\n"));
    for inventory in ["hosts", "hosts.yml"] {
        let out = run(dir, &["play", "pb.yml", "-i", inventory, "-e", "@extra.yml"]);
        assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("\"msg\": \"group-file-extra\""),
            "{}",
            stdout(&out)
        );
    }
}

/// Generated inputs nested tens of thousands of levels deep, in every place an expression or
/// a YAML tree is read: each is invalid input at its location, never a stack overflow.
#[test]
fn deep_nesting_is_invalid_input_at_its_location_not_a_crash() {
    let n = 30_000;
    let msg = |expr: String| format!("- hosts: app\n  tasks:\n    - debug: {{ msg: \"{expr}\" }}\n");
    let when = |expr: String| format!("- hosts: app\n  tasks:\n    - debug: {{ msg: hi }}\n      when: \"{expr}\"\n");
    let cases = [
        (
            msg(format!("{{{{ {}1 }}}}", "- ".repeat(n))),
            "pb.yml:3:21",
            "expression nested too deeply",
        ),
        (
            when(format!("{}true", "not ".repeat(n))),
            "pb.yml:4:13",
            "expression nested too deeply",
        ),
        (
            msg(format!("{{{{ {}1 }}}}", "1 + ".repeat(n))),
            "pb.yml:3:21",
            "expression nested too deeply",
        ),
        (
            msg(format!("{{{{ x{} }}}}", "[0]".repeat(n))),
            "pb.yml:3:21",
            "expression nested too deeply",
        ),
        (
            msg(format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n))),
            "pb.yml:3:21",
            "expression nested too deeply",
        ),
        (
            msg(format!("{{{{ {}{} }}}}", "[".repeat(n), "]".repeat(n))),
            "pb.yml:3:21",
            "expression nested too deeply",
        ),
        (
            format!(
                "- hosts: app\n  tasks: []\n  vars:\n    x:\n      {}1\n",
                "- ".repeat(100_000)
            ),
            "pb.yml:5:2001",
            "YAML nested too deeply",
        ),
        (
            format!(
                "- hosts: app\n  tasks: []\n  vars:\n    x: {}{}\n",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
            "pb.yml:4:",
            "YAML nested too deeply",
        ),
    ];
    for (pb, at, what) in cases {
        let d = setup(&pb);
        for extra in [&["--syntax-check"][..], &[]] {
            let out = play(d.path(), extra);
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(5),
                "{at} {extra:?}: {}",
                &err[..err.len().min(400)]
            );
            assert!(
                err.contains(what) && err.contains(&format!("--> {at}")),
                "{}",
                &err[..err.len().min(400)]
            );
        }
    }
    // A template file, too.
    let d = setup("- hosts: app\n  tasks:\n    - template: { src: t.j2, dest: /tmp/roll-never-written }\n");
    write(
        d.path(),
        "templates/t.j2",
        &format!("line\n{{{{ {}1 }}}}\n", "- ".repeat(n)),
    );
    let out = play(d.path(), &["--syntax-check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("expression nested too deeply") && err.contains("t.j2:2:2004"),
        "{err}"
    );
}

#[test]
fn a_lock_wait_that_is_not_a_duration_is_refused_at_the_command_line() {
    let d = setup("- hosts: app\n  tasks:\n    - file: { path: ran, state: touch }\n");
    let out = play(d.path(), &["--lock-wait", "5x"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("--lock-wait") && err.contains("`5x` is not a duration (write `60s`"),
        "{err}"
    );
    assert!(!d.path().join("ran").exists());
    assert_eq!(
        play(d.path(), &["--lock-wait", "2m", "--syntax-check"]).status.code(),
        Some(0)
    );
}

/// `module_defaults` at play and block level, short and qualified names, merged as ansible-core
/// 2.19 merges them (its run of the same playbook printed `[a, b, a, /tmp]`): a block's entry
/// for `ansible.builtin.command` replaces the play's `command` entry, `shell` keeps the play's,
/// and a task's own parameter wins.
#[test]
fn module_defaults_fill_the_parameters_tasks_do_not_give() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("a")).unwrap();
    std::fs::create_dir_all(p.join("b")).unwrap();
    let (a, b) = (p.join("a").display().to_string(), p.join("b").display().to_string());
    write(p, "hosts", "localhost ansible_connection=local\n");
    write(
        p,
        "pb.yml",
        &format!(
            "- hosts: localhost\n  gather_facts: false\n  module_defaults:\n    command: {{ chdir: {a} }}\n    shell: {{ chdir: {a} }}\n  tasks:\n    - command: pwd\n      register: p1\n    - block:\n        - command: pwd\n          register: p2\n        - shell: pwd\n          register: p3\n        - command: pwd\n          args: {{ chdir: /tmp }}\n          register: p4\n      module_defaults:\n        ansible.builtin.command: {{ chdir: {b} }}\n    - assert: {{ that: [\"[p1.stdout, p2.stdout, p3.stdout, p4.stdout] == ['{a}', '{b}', '{a}', '/tmp']\"] }}\n"
        ),
    );
    let o = run(p, &["play", "pb.yml", "-i", "hosts"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    // `group/docker` reaches the docker modules (a wrong parameter is refused at its place
    // before the run) and not the others; an unknown group is named.
    write(
        p,
        "pb.yml",
        "- hosts: localhost\n  gather_facts: false\n  module_defaults:\n    group/docker: { no_such_param: 1 }\n    group/nope: {}\n  tasks:\n    - command: \"true\"\n    - community.docker.docker_image: { name: busybox }\n",
    );
    let o = run(p, &["play", "pb.yml", "-i", "hosts", "--syntax-check"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("no_such_param"), "{err}");
    assert!(err.contains("pb.yml:4:36"), "{err}");
    assert!(err.contains("error: unknown module_defaults group `nope`"), "{err}");
    assert_eq!(
        err.matches("unknown parameter `no_such_param`").count(),
        1,
        "only the docker task: {err}"
    );
}

/// The host's `ansible_connection` beats the `connection` keyword (ansible-core 2.19 runs this
/// play locally too); the keyword decides for hosts whose variables say nothing.
#[test]
fn the_hosts_ansible_connection_beats_the_connection_keyword() {
    let d = setup("- hosts: app\n  gather_facts: false\n  connection: ssh\n  tasks:\n    - command: \"true\"\n");
    let o = play(d.path(), &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(recap(&stdout(&o)).len(), 3);
    write(d.path(), "hosts", "[app]\napp1 ansible_host=127.0.0.1 ansible_port=1\n");
    write(
        d.path(),
        "pb.yml",
        "- hosts: app\n  gather_facts: false\n  connection: local\n  tasks:\n    - command: \"true\"\n",
    );
    let o = play(d.path(), &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// ansible-core resolves `ansible.legacy.NAME` to the builtin (or adjacent) module: roll reads a
/// published task file (geerlingguy.docker's setup-Suse.yml, which writes
/// `ansible.legacy.zypper`) the same whether its modules are written short or under
/// `ansible.legacy.`: the same diagnostics, once the prefix is read past.
#[test]
fn ansible_legacy_names_read_as_the_builtin_modules_in_a_published_role() {
    let published = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "tests/compat/published/afd-docker-flask/docker-flask/provisioning/roles/geerlingguy.docker/tasks/setup-Suse.yml",
    );
    let text = std::fs::read_to_string(published).unwrap();
    assert!(text.contains("  ansible.legacy.zypper:"), "the published file changed");
    let keywords = ["name", "when", "register", "changed_when", "check_mode"];
    let rewrite = |legacy: bool| -> String {
        text.lines()
            .map(|l| {
                let key = l.strip_prefix("  ").and_then(|r| r.split_once(':')).map(|(k, _)| k);
                match key {
                    Some(k) if !k.starts_with(' ') && !keywords.contains(&k) => {
                        let short = k.strip_prefix("ansible.legacy.").unwrap_or(k);
                        let written = if legacy {
                            format!("ansible.legacy.{short}")
                        } else {
                            short.to_string()
                        };
                        l.replacen(k, &written, 1)
                    }
                    _ => l.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let said = |legacy: bool| -> (Option<i32>, String) {
        let d = setup(
            "- hosts: app\n  gather_facts: false\n  vars: { docker_obsolete_packages: [], docker_zypper_repo_url: u, docker_add_repo: false, docker_packages: [docker] }\n  tasks:\n    - import_tasks: setup-Suse.yml\n",
        );
        write(d.path(), "setup-Suse.yml", &rewrite(legacy));
        let out = play(d.path(), &["--syntax-check"]);
        // What is wrong and where (the caret and the suggestion follow the name as written).
        let what: Vec<String> = stderr(&out)
            .replace("ansible.legacy.", "")
            .lines()
            .filter(|l| l.starts_with("error") || l.trim_start().starts_with("-->"))
            .map(str::to_string)
            .collect();
        (out.status.code(), what.join("\n"))
    };
    let legacy = rewrite(true);
    assert!(legacy.contains("  ansible.legacy.package:") && legacy.contains("  ansible.legacy.systemd:"));
    let (short_rc, short) = said(false);
    let (legacy_rc, long) = said(true);
    assert_eq!(
        (legacy_rc, &long),
        (short_rc, &short),
        "short:\n{short}\nlegacy:\n{long}"
    );
    assert!(
        !short.contains("`package`") && !short.contains("`systemd`") && !short.contains("`command`"),
        "{short}"
    );
}

/// An inventory of one ssh host, `app1`, whose port is closed: what reaches it is unreachable.
fn app1_on_a_closed_ssh_port(dir: &Path) -> common::ClosedPort {
    let closed = common::ClosedPort::new();
    write(
        dir,
        "hosts",
        &format!(
            "app1 ansible_host=127.0.0.1 ansible_port={} ansible_connection=ssh\n",
            closed.port
        ),
    );
    closed
}

/// The PLAY RECAP's host lines, blanks normalised.
fn recap_words(text: &str) -> Vec<String> {
    recap(text)
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// A task delegated to `127.0.0.1` or `::1`, names the inventory does not hold, runs on the
/// controller as Ansible's implicit localhost (ansible-core's `C.LOCALHOST`), never over the
/// delegating host's ssh (here a closed port), as ansible-playbook 2.19.14 ran this playbook.
#[test]
fn a_task_delegated_to_a_loopback_address_runs_on_the_controller() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let _closed = app1_on_a_closed_ssh_port(dir);
    write(
        dir,
        "pb.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - command: echo four
      delegate_to: 127.0.0.1
      register: a
    - command: echo six
      delegate_to: "::1"
      register: b
    - debug: msg="{{ a.stdout }} {{ b.stdout }}"
"#,
    );
    let out = run(dir, &["play", "pb.yml", "-i", "hosts"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("changed: [app1 -> 127.0.0.1]"), "{text}");
    assert!(text.contains("changed: [app1 -> ::1]"), "{text}");
    assert!(text.contains("\"msg\": \"four six\""), "{text}");
    assert_eq!(
        recap_words(&text),
        ["app1 : ok=3 changed=2 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0"],
        "{text}"
    );
}

/// `local_action:` and `action:`, in their string and mapping forms, as ansible-playbook 2.19.14
/// ran this playbook: `local_action` runs on the controller (the implicit local `localhost`,
/// whatever the host's own `ansible_connection` and the task's `delegate_to` say), `action` on
/// the host itself (here an ssh host whose port is closed: unreachable).
#[test]
fn local_action_runs_on_the_controller_and_action_on_the_host() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let _closed = app1_on_a_closed_ssh_port(dir);
    write(
        dir,
        "pb.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - local_action: command echo hi {{ inventory_hostname }}
      register: a
    - debug: var=a.stdout
    - local_action:
        module: copy
        content: "x\n"
        dest: "{{ playbook_dir }}/out-{{ inventory_hostname }}"
    - name: both
      local_action: command echo both
      delegate_to: app1
      register: b
    - debug: var=b.stdout
    - action: shell echo via-action
"#,
    );
    let listing = run(dir, &["play", "pb.yml", "-i", "hosts", "--list-tasks"]);
    let listed = stdout(&listing);
    let tasks: Vec<&str> = listed
        .lines()
        .skip_while(|l| !l.trim().starts_with("tasks:"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        tasks,
        [
            "command\tTAGS: []",
            "debug\tTAGS: []",
            "copy\tTAGS: []",
            "both\tTAGS: []",
            "debug\tTAGS: []",
            "shell\tTAGS: []"
        ],
        "{listed}"
    );
    let out = run(dir, &["play", "pb.yml", "-i", "hosts"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}{}", stderr(&out));
    assert!(text.contains("changed: [app1 -> localhost]"), "{text}");
    assert!(text.contains("\"a.stdout\": \"hi app1\""), "{text}");
    assert!(text.contains("\"b.stdout\": \"both\""), "{text}");
    assert!(text.contains("fatal: [app1]: UNREACHABLE!"), "{text}");
    assert_eq!(std::fs::read_to_string(dir.join("out-app1")).unwrap(), "x\n");
    assert_eq!(
        recap_words(&text),
        ["app1 : ok=5 changed=3 unreachable=1 failed=0 skipped=0 rescued=0 ignored=0"],
        "{text}"
    );
}

/// `action` and `local_action` on one task, a second module beside one, or one that names no
/// module, are refused at their line before anything runs.
#[test]
fn a_task_with_two_actions_or_none_is_refused_at_its_line() {
    let d = setup(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - local_action: command echo x\n      action: command echo y\n    - local_action: command echo x\n      command: echo y\n    - local_action: {}\n",
    );
    let out = play(d.path(), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{}{err}", stdout(&out));
    assert!(err.contains("action and local_action are mutually exclusive"), "{err}");
    assert!(err.contains("pb.yml:5:7"), "{err}");
    assert!(
        err.contains("a task runs one module; found `command` and `command`"),
        "{err}"
    );
    assert!(err.contains("pb.yml:7:7"), "{err}");
    assert!(err.contains("`local_action` names no module"), "{err}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
