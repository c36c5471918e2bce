//! `get_url` on a real sshd host, downloading from a real HTTP server on loopback: what
//! ansible-core registered for the same cases (tests/modules/get_url: a new file, into a
//! directory, `checksum` given and as a URL, a wrong checksum, `force`, `mode`, a 404; check
//! mode, the run, again), and `headers` reaching the server.

use crate::common::{self, fleet::Fleet, oracle};
use std::process::Command;

#[test]
fn every_case_reports_what_ansible_reported() {
    let played = oracle::play("get_url");
    oracle::assert_same(&played.want, &played.got);
}

/// A process killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP server that answers 200 with the request's `X-Token` header as the body when it is
/// `s3cr3t-token`, and 403 without it.
const GUARDED: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        token = self.headers.get("X-Token", "")
        code, body = (200, ("token " + token + "\n").encode()) if token == "s3cr3t-token" else (403, b"no\n")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

#[test]
fn headers_reach_the_server_and_a_refusal_fails_the_task() {
    let d = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _server = Server(
        Command::new("python3")
            .args(["-c", GUARDED, &port.to_string()])
            .spawn()
            .expect("python3 is installed (Debian package `python3`)"),
    );
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 20, "the server did not listen on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fleet = Fleet::up(1, "gu");
    common::write(d.path(), "hosts", &fleet.inventory());
    let dest = d.path().join("got.txt");
    common::write(
        d.path(),
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - get_url: {{ url: 'http://127.0.0.1:{port}/x', dest: {dest} }}\n      register: refused\n      ignore_errors: true\n    - assert: {{ that: [refused.failed, refused.status_code == 403, refused.msg == 'Request failed'] }}\n    - get_url:\n        url: http://127.0.0.1:{port}/x\n        dest: {dest}\n        headers: {{ X-Token: s3cr3t-token }}\n",
            dest = dest.display()
        ),
    );
    let out = common::roll(d.path())
        .env("ROLL_KNOWN_HOSTS", fleet.known_hosts())
        .args(["play", "pb.yml", "-i", "hosts"])
        .output()
        .unwrap();
    let (stdout, stderr) = (common::stdout(&out), common::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "token s3cr3t-token\n");
    assert!(common::recap(&stdout)[0].contains("changed=1"), "{stdout}");
}

#[test]
fn a_parameter_ansible_removed_is_refused_at_its_place_before_the_run() {
    // `sha256sum` left get_url in ansible-core 2.14; here on the second line of a folded
    // `key=value` string, where the diagnostic points.
    let d = tempfile::tempdir().unwrap();
    common::write(d.path(), "hosts", "localhost ansible_connection=local\n");
    common::write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - get_url: url=http://127.0.0.1:9/x dest=/nonexistent/x\n               sha256sum=abc\n",
    );
    let out = common::run(d.path(), &["play", "pb.yml", "-i", "hosts"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("unknown parameter `sha256sum` for module `get_url`") && err.contains("pb.yml:5:16"),
        "{err}"
    );
}
