//! A real nginx with a private prefix on loopback and a `roll.nginx_switch` playbook on the
//! local connection that switches its upstream: for tests of what a switch shows while it
//! runs (progress, logs), which need its batches and pauses but no app behind the backends.

use super::{free_port, write};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Nginx {
    pub prefix: PathBuf,
    pub port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .arg("-p")
            .arg(&self.prefix)
            .args(["-c", "nginx.conf", "-s", "stop"])
            .output();
    }
}

impl Nginx {
    /// nginx in `DIR/nginx`, listening on a free port, proxying to `upstream web` from
    /// `web-upstream.conf` (first: every backend on blue).
    pub fn start(dir: &Path, backends: &[(String, u16, u16)]) -> Nginx {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "this test needs nginx: install the Debian package `nginx`"
        );
        let ng = dir.join("nginx");
        std::fs::create_dir_all(&ng).unwrap();
        let port = free_port();
        let blue: String = backends
            .iter()
            .map(|(_, b, _)| format!("    server 127.0.0.1:{b};\n"))
            .collect();
        write(&ng, "web-upstream.conf", &format!("upstream web {{\n{blue}}}\n"));
        write(
            &ng,
            "nginx.conf",
            &format!(
                "worker_processes 1;\npid {ng}/nginx.pid;\nerror_log {ng}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  include {ng}/web-upstream.conf;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://web; }}\n  }}\n}}\n",
                ng = ng.display()
            ),
        );
        let started = Command::new("nginx")
            .arg("-p")
            .arg(&ng)
            .args(["-c", "nginx.conf"])
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "nginx: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        Nginx { prefix: ng, port }
    }
}

/// `app1`..`appN`, each with a blue and a green port (nothing needs to listen on them).
pub fn backends(n: usize) -> Vec<(String, u16, u16)> {
    (1..=n).map(|i| (format!("app{i}"), free_port(), free_port())).collect()
}

/// In `dir`: `hosts` (proxy1, local), `upstream.j2` and `switch.yml`, a switch of `backends`
/// to green in `batches` with `pause` between them, validated and reloaded by `nginx`.
pub fn switch_playbook(dir: &Path, nginx: &Nginx, backends: &[(String, u16, u16)], batches: usize, pause: &str) {
    let list: Vec<serde_json::Value> = backends
        .iter()
        .map(|(n, b, g)| serde_json::json!({"name": n, "address": "127.0.0.1", "ports": {"blue": b, "green": g}}))
        .collect();
    write(dir, "hosts", "proxy1 ansible_connection=local\n");
    write(
        dir,
        "upstream.j2",
        "upstream web {\n{% for b in backends %}    server {{ b.address }}:{{ b.port }};\n{% endfor %}}\n",
    );
    let ng = nginx.prefix.display();
    write(
        dir,
        "switch.yml",
        &format!(
            "- name: Move traffic\n  hosts: proxy1\n  tasks:\n    - name: Switch the nginx upstream to the next colour\n      roll.nginx_switch:\n        app: web\n        to: green\n        backends: {backends}\n        template: upstream.j2\n        dest: {ng}/web-upstream.conf\n        batches: {batches}\n        pause: {pause}\n        validate: nginx -t -p {ng} -c nginx.conf\n        reload: nginx -s reload -p {ng} -c nginx.conf\n        pid_file: {ng}/nginx.pid\n        state_dir: {ng}/state\n",
            backends = serde_json::Value::from(list)
        ),
    );
}
