//! The quick start's sandbox, for tests: app servers and nginx proxies as loopback sshd hosts
//! (`scripts/fleet`), the app servers' containers in the real Docker engine pulling the demo
//! image from a local registry, and the real `playbooks/*.yml` with `inventories/sandbox`'s
//! group_vars. Everything lives in a private directory and goes when the rig is dropped.

#![allow(dead_code)]

use super::docker::{Cleanup, Registry, registry_labelled, run_label};
use super::fleet::Fleet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The sandbox tests take their turn: each runs a fleet, containers and nginx under load, and
/// their traffic is judged on a clock that two cores shared several ways would smear.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Sandbox {
    pub dir: PathBuf,
    pub inventory: PathBuf,
    pub apps: Vec<(String, String)>,
    pub proxies: Vec<(String, String)>,
    /// Fleets: the first holds the app servers and `proxy1`; each further proxy has its own,
    /// so that one proxy can die alone.
    pub fleets: Vec<Fleet>,
    pub registry: Registry,
    label: String,
    _cleanup: Cleanup,
    _tmp: tempfile::TempDir,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `name ansible_host=ADDR` lines of a fleet's inventory, as (name, address).
fn hosts_of(f: &Fleet) -> Vec<(String, String)> {
    f.inventory()
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(" ansible_host=")?;
            Some((name.to_string(), rest.trim().to_string()))
        })
        .collect()
}

impl Sandbox {
    /// `apps` app servers and `proxies` nginx proxies; `prefix` keeps host (and so container)
    /// names apart from other tests running at the same time.
    pub fn up(prefix: &str, apps: usize, proxies: usize, vars: serde_json::Value) -> Sandbox {
        Sandbox::up_with(prefix, apps, proxies, vars, 16)
    }

    /// As `up`, every app server (and `proxy1`) with an sshd of its own, so that one can die
    /// alone (`kill_app`).
    pub fn up_apart(prefix: &str, apps: usize, proxies: usize, vars: serde_json::Value) -> Sandbox {
        Sandbox::up_with(prefix, apps, proxies, vars, 1)
    }

    /// App server `i`'s sshd and its sessions are killed: roll can no longer reach it.
    pub fn kill_app(&self, i: usize) {
        self.fleets[0].kill_one(i);
    }

    /// App server `i`'s sshd starts again.
    pub fn start_app(&self, i: usize) {
        self.fleets[0].start_one(i);
    }

    fn up_with(prefix: &str, apps: usize, proxies: usize, vars: serde_json::Value, per_sshd: usize) -> Sandbox {
        assert!(
            Path::new("/usr/sbin/nginx").exists(),
            "this test needs nginx: install the Debian package `nginx`"
        );
        // Each sandbox labels its images and containers on its own, so that tests running side
        // by side never clean up each other's.
        let label = format!("{}-{prefix}", run_label());
        let registry = registry_labelled(&label);
        let cleanup = Cleanup(label.clone());
        let tmp = tempfile::Builder::new().prefix("roll-sandbox-").tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let mut fleets = vec![Fleet::up_per_sshd(apps + 1, prefix, per_sshd)];
        for k in 1..proxies {
            fleets.push(Fleet::up(1, &format!("{prefix}p{k}")));
        }
        let main = hosts_of(&fleets[0]);
        let app_hosts: Vec<(String, String)> = main[..apps].to_vec();
        let mut proxy_hosts = vec![main[apps].clone()];
        for f in &fleets[1..] {
            proxy_hosts.push(hosts_of(f)[0].clone());
        }
        let line = |(name, addr): &(String, String)| {
            let f = fleets
                .iter()
                .find(|f| hosts_of(f).iter().any(|(n, _)| n == name))
                .unwrap();
            format!(
                "{name} ansible_host={addr} ansible_port={} ansible_user=root ansible_ssh_private_key_file={}\n",
                f.port,
                f.path().join("id_ed25519").display()
            )
        };
        let mut hosts = String::from("[app]\n");
        hosts.extend(app_hosts.iter().map(line));
        hosts.push_str("\n[proxy]\n");
        hosts.extend(proxy_hosts.iter().map(line));
        let inventory = dir.join("inventories/sandbox");
        crate::common::write(&inventory, "hosts", &hosts);
        crate::common::copy_dir(
            &repo().join("inventories/sandbox/group_vars"),
            &inventory.join("group_vars"),
        );
        let known: String = fleets
            .iter()
            .map(|f| std::fs::read_to_string(f.known_hosts()).unwrap())
            .collect();
        crate::common::write(&dir, "known_hosts", &known);
        // The sandbox's settings, pointed at this test's registry and labelled for clean-up.
        let mut all = serde_json::json!({
            "registry": registry.addr,
            "extra_labels": { "roll.test": label.split_once('=').unwrap().1 },
            "switch_pause": "1s",
            "drain_hold": "0s",
            "health_timeout": "20s",
        });
        for (k, v) in vars.as_object().unwrap() {
            all[k] = v.clone();
        }
        crate::common::write(&dir, "test-vars.json", &all.to_string());
        let sb = Sandbox {
            dir,
            inventory,
            apps: app_hosts,
            proxies: proxy_hosts,
            fleets,
            registry,
            label,
            _cleanup: cleanup,
            _tmp: tmp,
        };
        let out = sb.play("sandbox.yml", &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "provisioning nginx: {}",
            crate::common::stdout(&out)
        );
        sb
    }

    /// `roll ARGS` with this sandbox's known hosts.
    pub fn roll(&self, args: &[&str]) -> Command {
        let mut c = crate::common::roll(&self.dir);
        c.args(args)
            .arg("--known-hosts")
            .arg(self.dir.join("known_hosts"))
            .env_remove("ROLL_SSH_CONFIG");
        c
    }

    /// `roll play playbooks/PLAYBOOK -i inventories/sandbox -e @test-vars.json EXTRA...`.
    pub fn play_cmd(&self, playbook: &str, extra: &[&str]) -> Command {
        let pb = repo().join("playbooks").join(playbook);
        let mut c = self.roll(&[
            "play",
            pb.to_str().unwrap(),
            "-i",
            "inventories/sandbox",
            "-e",
            "@test-vars.json",
        ]);
        for e in extra {
            c.args(["-e", e]);
        }
        c
    }

    pub fn play(&self, playbook: &str, extra: &[&str]) -> Output {
        self.play_cmd(playbook, extra).output().unwrap()
    }

    /// The address nginx listens on for `proxy`'s site.
    pub fn proxy_addr(&self, k: usize) -> String {
        format!("{}:8080", self.proxies[k].1)
    }

    pub fn proxy_dir(&self, k: usize) -> PathBuf {
        self.dir.join(".roll-sandbox").join(&self.proxies[k].0)
    }

    /// The switch state on proxy `k`, if any.
    pub fn state(&self, k: usize) -> Option<serde_json::Value> {
        self.app_state(k, "web")
    }

    /// The switch state of `app` on proxy `k`, if any.
    pub fn app_state(&self, k: usize, app: &str) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.proxy_dir(k).join(format!("state/{app}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `-e` of the shipped vars of a further sandbox app (`inventories/sandbox/apps/NAME.yml`).
    pub fn app_vars(name: &str) -> String {
        format!(
            "@{}",
            repo().join(format!("inventories/sandbox/apps/{name}.yml")).display()
        )
    }

    pub fn upstream(&self, k: usize) -> String {
        std::fs::read_to_string(self.proxy_dir(k).join("nginx/conf.d/web-upstream.conf")).unwrap_or_default()
    }

    /// The `server ADDR:PORT` lines of proxy `k`'s upstream.
    pub fn upstream_servers(&self, k: usize) -> Vec<String> {
        self.upstream(k)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("server "))
            .map(|l| {
                l.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches(';')
                    .to_string()
            })
            .collect()
    }

    /// Containers of this test: name → running.
    pub fn containers(&self) -> Vec<(String, bool)> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--filter", &format!("label={}", self.label)])
            .args(["--format", "{{.Names}} {{.State}}"])
            .output()
            .unwrap();
        let mut v: Vec<(String, bool)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, s)| (n.to_string(), s == "running"))
            .collect();
        v.sort();
        v
    }

    /// Containers of this test: name → ID.
    pub fn container_ids(&self) -> std::collections::BTreeMap<String, String> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--no-trunc", "--filter", &format!("label={}", self.label)])
            .args(["--format", "{{.Names}} {{.ID}}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, id)| (n.to_string(), id.to_string()))
            .collect()
    }

    /// Build release `tag` of the demo image and push it to this sandbox's registry (only there,
    /// so hosts really pull it), labelled for clean-up.
    pub fn push_release(&self, tag: &str) {
        let image = format!("{}/roll-demo:{tag}", self.registry.addr);
        let built = Command::new(repo().join("scripts/demo-image"))
            .args([format!("{}/roll-demo", self.registry.addr).as_str(), tag])
            .env("DEMO_IMAGE_LABELS", &self.label)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "demo image: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let p = super::docker::docker(&["push", "--quiet", &image]);
        assert!(p.status.success(), "push: {}", String::from_utf8_lossy(&p.stderr));
        super::docker::docker(&["image", "rm", &image]);
    }

    /// The tags of the demo image in the (shared) Docker engine.
    pub fn image_tags(&self) -> Vec<String> {
        let repo = format!("{}/roll-demo", self.registry.addr);
        let out = Command::new("docker")
            .args(["images", "--format", "{{.Tag}}", &repo])
            .output()
            .unwrap();
        let mut tags: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        tags.sort();
        tags
    }

    /// Wait until `f` holds for proxy `k`'s state (or panic after `limit`).
    pub fn wait_state(&self, k: usize, limit: Duration, f: impl Fn(&serde_json::Value) -> bool) {
        let t0 = Instant::now();
        loop {
            if self.state(k).is_some_and(|s| f(&s)) {
                return;
            }
            assert!(t0.elapsed() < limit, "state never reached: {:?}", self.state(k));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for k in 0..self.proxies.len() {
            if let Ok(pid) = std::fs::read_to_string(self.proxy_dir(k).join("nginx/nginx.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}
