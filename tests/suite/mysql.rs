//! `community.mysql.mysql_db` and `mysql_user` against a real MariaDB (Debian package
//! `mariadb-server`) that the play starts on a socket of its own: every step registers what
//! ansible-core registered for it (tests/modules/mysql), a password given to either module never
//! shows in what roll prints, and what roll cannot do is refused before any host.

use crate::common::{oracle, roll, stderr, stdout, write};
use std::path::Path;

fn need_mariadb() {
    for (bin, package) in [
        ("/usr/sbin/mariadbd", "mariadb-server"),
        ("/usr/bin/mariadb-install-db", "mariadb-server"),
        ("/usr/bin/mariadb", "mariadb-client"),
    ] {
        assert!(
            Path::new(bin).exists(),
            "this test needs {bin}: install the Debian package `{package}`"
        );
    }
}

#[test]
fn every_step_registers_what_ansible_registered() {
    need_mariadb();
    let played = oracle::play("mysql");
    oracle::assert_same(&played.want, &played.got);
}

/// The published WordPress role's two tasks, word for word, against a private server: the
/// password is in no line roll prints (in `-v` results, JSON events or the diff), and the second
/// run changes nothing.
#[test]
fn the_published_wordpress_tasks_create_and_then_keep_the_database_and_user() {
    need_mariadb();
    let d = tempfile::tempdir().unwrap();
    let base = d.path();
    write(base, "hosts", "db1 ansible_connection=local\n");
    write(
        base,
        "pb.yml",
        r##"
- hosts: all
  gather_facts: false
  vars:
    sock: "{{ base }}/mysql.sock"
    wp_db_name: wordpress
    wp_db_user: wordpress
    wp_db_password: 'p"#w\ord'
  tasks:
    - command: >-
        mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal
        --skip-test-db --datadir={{ base }}/data --tmpdir={{ base }}
      args: { creates: "{{ base }}/data/mysql" }
    - block:
        - command: >-
            start-stop-daemon --start --background --make-pidfile --pidfile {{ base }}/mysqld.pid
            --exec /usr/sbin/mariadbd -- --no-defaults --datadir={{ base }}/data --tmpdir={{ base }} --socket={{ sock }}
            --skip-networking --user=root --skip-log-bin --log-error={{ base }}/mysqld.err
        - wait_for: { path: "{{ sock }}", timeout: 60 }
        - name: Create WordPress database
          mysql_db: name={{ wp_db_name }} state=present login_unix_socket={{ sock }} login_user=root
        - name: Create WordPress database user
          mysql_user: name={{ wp_db_user }} password={{ wp_db_password }} priv={{ wp_db_name }}.*:ALL host='localhost' state=present login_unix_socket={{ sock }} login_user=root
        - name: The new user can log in with its password
          shell: mariadb --no-defaults -S {{ sock }} -u wordpress -p'p"#w\ord' -N -B -e 'SELECT CURRENT_USER(); SHOW DATABASES LIKE "wordpress"'
          register: login
          changed_when: false
        - debug: { var: login.stdout_lines }
      always:
        - command: start-stop-daemon --stop --oknodo --pidfile {{ base }}/mysqld.pid --retry 30
"##,
    );
    let b = format!("base={}", base.display());
    let first = roll(base)
        .args(["play", "pb.yml", "-i", "hosts", "-v", "--diff", "-e", &b])
        .output()
        .unwrap();
    let (out, err) = (stdout(&first), stderr(&first));
    assert_eq!(first.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("wordpress@localhost"), "the user logs in: {out}");
    assert!(out.contains("changed: [db1]"), "{out}");
    let second = roll(base)
        .args(["play", "pb.yml", "-i", "hosts", "--format", "json", "-e", &b])
        .output()
        .unwrap();
    let (json, err2) = (stdout(&second), stderr(&second));
    assert_eq!(second.status.code(), Some(0), "{json}{err2}");
    for text in [&out, &err, &json, &err2] {
        assert!(!text.contains("#w\\ord"), "the password shows: {text}");
    }
    let changed: Vec<&str> = json
        .lines()
        .filter(|l| l.contains("\"changed\":true") && (l.contains("mysql_db") || l.contains("mysql_user")))
        .collect();
    assert!(changed.is_empty(), "the second run changes nothing: {changed:?}");
}

#[test]
fn a_host_without_the_client_fails_naming_it() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "db1 ansible_connection=local\n");
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - mysql_db: { name: app, login_password: hunter22 }\n      environment: { PATH: /nonexistent }\n",
    );
    let out = roll(d.path()).args(["play", "pb.yml", "-i", "hosts"]).output().unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("neither `mariadb` nor `mysql` (the MariaDB/MySQL command-line client) is on the host's PATH"),
        "{text}"
    );
    assert!(!text.contains("hunter22"), "{text}");
}

#[test]
fn dump_and_import_are_refused_before_any_host() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "db1 ansible_host=192.0.2.1\n");
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - community.mysql.mysql_db: { name: app, state: dump, target: /tmp/app.sql }\n",
    );
    let out = roll(d.path()).args(["play", "pb.yml", "-i", "hosts"]).output().unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("invalid value `dump` for `state` of module `community.mysql.mysql_db`"),
        "{text}"
    );
    assert!(text.contains("pb.yml:4:"), "{text}");
    assert!(
        text.contains("unknown parameter `target` for module `community.mysql.mysql_db`"),
        "{text}"
    );
}

/// Without login parameters the client reads `~/.my.cnf` (the host user's), as community.mysql
/// does; `check_implicit_admin` logs in as root without a password first, falling back to the
/// login given; a wrong password fails naming the config file, and the password shows nowhere.
#[test]
fn the_config_file_and_the_implicit_admin_log_in() {
    need_mariadb();
    let d = tempfile::tempdir().unwrap();
    let base = d.path();
    write(base, "hosts", "db1 ansible_connection=local\n");
    write(
        base,
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  vars:
    sock: "{{ base }}/mysql.sock"
  tasks:
    - command: >-
        mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal
        --skip-test-db --datadir={{ base }}/data --tmpdir={{ base }}
    - block:
        - command: >-
            start-stop-daemon --start --background --make-pidfile --pidfile {{ base }}/mysqld.pid
            --exec /usr/sbin/mariadbd -- --no-defaults --datadir={{ base }}/data --tmpdir={{ base }} --socket={{ sock }}
            --skip-networking --user=root --skip-log-bin --log-error={{ base }}/mysqld.err
        - wait_for: { path: "{{ sock }}", timeout: 60 }
        - copy: { dest: "{{ base }}/home/.my.cnf", content: "[client]\nuser=root\nsocket={{ sock }}\n" }
        - name: From ~/.my.cnf
          mysql_db: { name: fromcnf }
          environment: { HOME: "{{ base }}/home" }
          register: fromcnf
        - name: Implicit admin before a wrong login
          mysql_db: { name: implicit, check_implicit_admin: true, login_user: nobody, login_password: wrong-pass-1, login_unix_socket: "{{ sock }}" }
          register: implicit
        - name: A wrong login
          mysql_user: { name: someone, login_user: nobody, login_password: wrong-pass-1, login_unix_socket: "{{ sock }}" }
          register: wrong
          ignore_errors: true
        - debug:
            msg: "{{ fromcnf.executed_commands }} {{ implicit.executed_commands }} {{ wrong.msg }}"
      always:
        - command: start-stop-daemon --stop --oknodo --pidfile {{ base }}/mysqld.pid --retry 30
"#,
    );
    std::fs::create_dir(base.join("home")).unwrap();
    let b = format!("base={}", base.display());
    let out = roll(base)
        .args(["play", "pb.yml", "-i", "hosts", "-e", &b])
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}{err}");
    assert!(text.contains("['CREATE DATABASE `fromcnf`']"), "{text}");
    assert!(text.contains("['CREATE DATABASE `implicit`']"), "{text}");
    assert!(
        text.contains("unable to connect to database, check login_user and login_password are correct or ~/.my.cnf has the credentials. Exception message: ERROR 1045 (28000): Access denied for user 'nobody'@'localhost'"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-pass-1") && !err.contains("wrong-pass-1"),
        "{text}{err}"
    );
}
