//! Secrets stay secret: a value from the controller's environment, a variable named in
//! `roll_secret_vars` and the output of a `no_log` task appear in none of roll's outputs
//! (terminal log with diffs, JSON Lines, JUnit, `roll plan` and its file) nor in any process's
//! argument list while the play runs over real SSH. (The registry password is covered by the docker tests.)
//! A secret stays masked where it is a mapping key of a result, and once `b64encode` has
//! transformed it.

use crate::common;
use crate::common::fleet;

use common::{roll, stdout, write};
use fleet::Fleet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const PLAYBOOK: &str = r#"
- hosts: app
  vars:
    roll_secret_vars: [db_password]
    db_password: "pw-{{ 'Zq9x' }}-marked-secret"
  tasks:
    - name: "Token {{ lookup('env', 'ROLL_TEST_TOKEN') }}"
      debug: { msg: "token is {{ lookup('env', 'ROLL_TEST_TOKEN') }}" }
    - name: Marked variable
      debug: { msg: "db {{ db_password }}" }
    - name: Into a file
      copy:
        content: "password={{ db_password }}\ntoken={{ lookup('env', 'ROLL_TEST_TOKEN') }}\n"
        dest: "{{ out }}/app.env"
        mode: "0600"
    - name: Hidden
      shell: echo hidden-output-value-42
      no_log: true
      register: hidden
    - name: Shown again
      debug: { var: hidden.stdout }
    - name: Environment of a command, while ps looks
      shell: "sleep 3; printf %s \"$TOKEN$DBPW\" | wc -c"
      environment: { TOKEN: "{{ lookup('env', 'ROLL_TEST_TOKEN') }}", DBPW: "{{ db_password }}" }
      register: lens
    - assert: { that: ["lens.stdout | int == (lookup('env', 'ROLL_TEST_TOKEN') ~ db_password) | length"] }
      when: not ansible_check_mode
    - name: A failure that names the secret
      fail: { msg: "cannot use {{ db_password }}" }
      ignore_errors: true
"#;

#[test]
fn secrets_appear_in_no_output_and_no_argument_list() {
    let f = Fleet::up(1, "sec");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "hosts",
        &f.inventory()
            .replace("[fleet]", "[app]")
            .replace("[fleet:vars]", "[app:vars]"),
    );
    write(dir, "pb.yml", PLAYBOOK);
    let out_dir = dir.join("remote");
    std::fs::create_dir_all(&out_dir).unwrap();
    let token = format!("tok-{}-{}", std::process::id(), "Hq7vN2");
    let secrets = [token.as_str(), "pw-Zq9x-marked-secret", "hidden-output-value-42"];

    // Watch every process's argument list while the plays run.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let (stop2, seen2) = (stop.clone(), seen.clone());
    let watcher = std::thread::spawn(move || {
        let mut samples = 0;
        while !stop2.load(Ordering::SeqCst) {
            let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
            seen2.lock().unwrap().push_str(&String::from_utf8_lossy(&ps.stdout));
            samples += 1;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        samples
    });
    let run = |extra: &[&str]| {
        let mut c = roll(dir);
        c.args(["play", "pb.yml", "-i", "hosts", "--known-hosts"])
            .arg(f.known_hosts())
            .args(["-e", &format!("out={}", out_dir.display())])
            .args(extra)
            .env("ROLL_TEST_TOKEN", &token);
        c.output().unwrap()
    };
    let human = run(&["--diff", "-v", "--junit", "report.xml"]);
    let json = run(&["--format", "json", "--check", "--diff"]);
    let mut plan_cmd = roll(dir);
    plan_cmd
        .args(["plan", "pb.yml", "-i", "hosts", "--known-hosts"])
        .arg(f.known_hosts())
        .args(["-e", &format!("out={}", out_dir.display()), "-o", "saved.plan"])
        .env("ROLL_TEST_TOKEN", &token);
    let plan = plan_cmd.output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
    let plan_file = std::fs::read_to_string(dir.join("saved.plan")).unwrap();
    let plan_out = stdout(&plan);
    stop.store(true, Ordering::SeqCst);
    let samples = watcher.join().unwrap();
    assert!(samples > 10, "ps was sampled too rarely: {samples}");

    let human_text = format!("{}{}", stdout(&human), common::stderr(&human));
    assert_eq!(human.status.code(), Some(0), "{human_text}");
    let json_text = format!("{}{}", stdout(&json), common::stderr(&json));
    let junit = std::fs::read_to_string(dir.join("report.xml")).unwrap();
    let ps = seen.lock().unwrap().clone();
    for (what, text) in [
        ("log", &human_text),
        ("json", &json_text),
        ("junit", &junit),
        ("plan output", &plan_out),
        ("plan file", &plan_file),
        ("ps", &ps),
    ] {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
        }
    }
    // Masked where they would have been, and still used for real.
    assert!(human_text.contains("TASK [Token ********]"), "{human_text}");
    assert!(human_text.contains("\"msg\": \"db ********\""), "{human_text}");
    assert!(
        human_text.contains("+password=********"),
        "the diff is masked: {human_text}"
    );
    assert!(human_text.contains("\"hidden.stdout\": \"********\""), "{human_text}");
    assert!(human_text.contains("cannot use ********"), "{human_text}");
    assert!(json_text.contains("********"), "{json_text}");
    let file = std::fs::read_to_string(out_dir.join("app.env")).unwrap();
    assert_eq!(file, format!("password=pw-Zq9x-marked-secret\ntoken={token}\n"));
}

/// A secret used as a mapping key, and a secret inside a `b64encode`d value (a Basic-auth
/// header), are masked in the log and in the JSON events; local hosts, no sshd needed.
#[test]
fn secrets_as_mapping_keys_and_in_base64_are_masked() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "hosts", "app1 ansible_connection=local\n");
    write(
        dir,
        "pb.yml",
        r#"
- hosts: all
  vars:
    roll_secret_vars: [api_password]
    api_password: "pw-{{ 'Kd72' }}-basic-auth"
    api_user: deploy
  tasks:
    - name: Secret keys
      debug: { msg: "{{ {lookup('env', 'ROLL_TEST_KEY'): 1, 'plain': api_password} }}" }
    - name: Basic auth
      debug: { msg: "Authorization: Basic {{ (api_user ~ ':' ~ api_password) | b64encode }}" }
    - name: Encoded alone
      set_fact: { encoded_key: "{{ lookup('env', 'ROLL_TEST_KEY') | b64encode }}" }
    - name: Shown later
      debug: { var: encoded_key }
"#,
    );
    let key = format!("key-{}-Sx81vQ3m", std::process::id());
    let run = |extra: &[&str]| {
        let out = roll(dir)
            .args(["play", "pb.yml", "-i", "hosts"])
            .args(extra)
            .env("ROLL_TEST_KEY", &key)
            .output()
            .unwrap();
        let text = format!("{}{}", stdout(&out), common::stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{text}");
        text
    };
    let human = run(&[]);
    let json = run(&["--format", "json"]);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let header = b64.encode("deploy:pw-Kd72-basic-auth");
    let encoded_key = b64.encode(&key);
    for (what, text) in [("log", &human), ("json", &json)] {
        for s in [key.as_str(), "pw-Kd72-basic-auth", &header, &encoded_key] {
            assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
        }
    }
    assert!(human.contains("\"msg\": \"Authorization: Basic ********\""), "{human}");
    assert!(human.contains("\"encoded_key\": \"********\""), "{human}");
    assert!(json.contains("\"msg\":\"Authorization: Basic ********\""), "{json}");
    assert!(human.contains("\"********\": 1"), "{human}");
    assert!(human.contains("\"plain\": \"********\""), "{human}");
    assert!(
        json.contains("\"msg\":{\"********\":1,\"plain\":\"********\"}"),
        "{json}"
    );
}
