//! `examples/gitlab-ci.yml` run by a local GitLab CI runner, `gitlabci-local` from PyPI (`gcil`,
//! installed by scripts/setup), with its jobs on this host like a shell executor (`-H`), against
//! two sandboxes, staging and production: the merge request's plan job saves the plan, the
//! manual production job applies it from another build directory, the default branch's
//! pipeline (`-p`) runs every stage (staging deploy, rollback, status) while a second one waits
//! for its deploy lock, and a plan the world moved away from fails its job.
//!
//! What gcil does not do, so this test does not see it: it does not evaluate `rules:` (the
//! test sets the variables a merge request or branch pipeline has and names the jobs of a
//! merge request; `-p` runs every job, the manual ones too, except the image build, left out
//! by its runner tag with `-t docker`), nor `environment:` URLs, `resource_group`, `needs`,
//! `expose_as`, `artifacts` (jobs on the host share their build directory; the test copies the
//! plan artifact to the next build directory itself), JUnit report upload and masking of
//! variables (roll's own masking is checked instead, and that no job prints the key).

use crate::common;
use common::sandbox::Sandbox;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `gcil`: `ROLL_GCIL`, on PATH, or where scripts/setup installs it.
fn gcil() -> PathBuf {
    if let Some(p) = std::env::var_os("ROLL_GCIL") {
        return PathBuf::from(p);
    }
    let on_path = Command::new("sh").args(["-c", "command -v gcil"]).output().unwrap();
    if on_path.status.success() {
        return PathBuf::from(String::from_utf8_lossy(&on_path.stdout).trim());
    }
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let venv = home.join(".cache/roll-tools/gcil/bin/gcil");
    assert!(
        venv.exists(),
        "this test needs gcil: `pip install gitlabci-local` (scripts/setup installs it in ~/.cache/roll-tools/gcil)"
    );
    venv
}

/// A build directory: the project as a job checks it out (the example as `.gitlab-ci.yml`, the
/// playbooks and templates), a git repository as gcil expects.
fn checkout(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for sub in ["playbooks", "templates", "roles", "files"] {
        if repo().join(sub).is_dir() {
            common::copy_dir(&repo().join(sub), &dir.join(sub));
        }
    }
    std::fs::copy(repo().join("examples/gitlab-ci.yml"), dir.join(".gitlab-ci.yml")).unwrap();
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(git.success());
    dir
}

/// The sandbox's test settings (registry, labels, short pauses) in its inventory's
/// group_vars, where the pipeline's plain `-i INVENTORY` finds them.
fn settle(sb: &Sandbox) {
    let gv = sb.inventory.join("group_vars");
    std::fs::create_dir_all(gv.join("all")).unwrap();
    std::fs::rename(gv.join("all.yml"), gv.join("all/00-sandbox.yml")).unwrap();
    std::fs::copy(sb.dir.join("test-vars.json"), gv.join("all/50-test.yml")).unwrap();
}

const REGISTRY_PASSWORD: &str = "reg-token-Qz7xW4k1";

struct Pipeline<'a> {
    staging: &'a Sandbox,
    production: &'a Sandbox,
    key: String,
    known_hosts: String,
}

impl Pipeline<'_> {
    /// `gcil -H ARGS` in `dir` with the variables of a pipeline for `source` (`push` on the
    /// default branch, or `merge_request_event`), and release `release`.
    fn gcil(&self, dir: &Path, source: &str, release: &str, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            common::roll_bin().parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut vars = vec![
            "CI=true".to_string(),
            "GITLAB_CI=true".to_string(),
            format!("CI_PIPELINE_SOURCE={source}"),
            "CI_DEFAULT_BRANCH=main".to_string(),
            format!("RELEASE={release}"),
            format!("STAGING_INVENTORY={}", self.staging.inventory.display()),
            format!("PRODUCTION_INVENTORY={}", self.production.inventory.display()),
            "LOCK_WAIT=3m".to_string(),
            // Passed by name: their values come from this process's environment.
            "SSH_PRIVATE_KEY".to_string(),
            "SSH_KNOWN_HOSTS".to_string(),
            "REGISTRY_PASSWORD".to_string(),
        ];
        if source == "merge_request_event" {
            vars.push("CI_MERGE_REQUEST_IID=7".into());
        } else {
            vars.push("CI_COMMIT_BRANCH=main".into());
        }
        let mut c = Command::new(gcil());
        c.current_dir(dir)
            .arg("-H")
            .arg("--no-color")
            .env("PATH", path)
            .env("SSH_PRIVATE_KEY", &self.key)
            .env("SSH_KNOWN_HOSTS", &self.known_hosts)
            .env("REGISTRY_PASSWORD", REGISTRY_PASSWORD)
            .env("NO_COLOR", "1")
            .env_remove("ROLL_KNOWN_HOSTS")
            .env_remove("ROLL_SSH_CONFIG")
            .env_remove("ROLL_INVENTORY");
        for v in &vars {
            c.args(["-e", v]);
        }
        c.args(args);
        c.output().expect("run gcil")
    }
}

fn log(o: &Output) -> String {
    format!("{}{}", common::stdout(o), common::stderr(o))
}

#[test]
fn the_example_pipeline_plans_deploys_applies_rolls_back_and_waits_for_the_lock() {
    gcil();
    let vars = serde_json::json!({ "switch_batches": 2, "switch_pause": "2s" });
    let staging = Sandbox::up("gls", 2, 1, vars.clone());
    let production = Sandbox::up("glp", 2, 1, vars);
    for sb in [&staging, &production] {
        let first = sb.play("deploy.yml", &["release=1"]);
        assert_eq!(first.status.code(), Some(0), "{}", log(&first));
        settle(sb);
    }
    // The deploy key of the variable is staging's; production's hosts name theirs in the
    // inventory (each sandbox's fleet has its own).
    let key = std::fs::read_to_string(staging.fleets[0].path().join("id_ed25519")).unwrap();
    let known_hosts = format!(
        "{}{}",
        std::fs::read_to_string(staging.dir.join("known_hosts")).unwrap(),
        std::fs::read_to_string(production.dir.join("known_hosts")).unwrap()
    );
    let p = Pipeline {
        staging: &staging,
        production: &production,
        key,
        known_hosts,
    };
    let root = tempfile::tempdir().unwrap();

    // The merge request: its plan job saves the production plan and its log.
    let mr = checkout(root.path(), "mr");
    let plan = p.gcil(&mr, "merge_request_event", "2", &["-R", "plan"]);
    let text = log(&plan);
    assert!(plan.status.success(), "{text}");
    assert!(mr.join("production.plan").is_file(), "{text}");
    let saved = std::fs::read_to_string(mr.join("plan.txt")).unwrap();
    assert!(
        saved.contains("Plan: ") && saved.contains("Saved to production.plan"),
        "{saved}"
    );
    assert!(text.contains("section_start:"), "roll's collapsible sections: {text}");

    // The reviewed plan, applied by the manual production job in another build directory.
    let apply_dir = checkout(root.path(), "main-0");
    std::fs::copy(mr.join("production.plan"), apply_dir.join("production.plan")).unwrap();
    let applied = p.gcil(&apply_dir, "push", "2", &["-m", "-R", "deploy-production"]);
    let text = log(&applied);
    assert!(applied.status.success(), "{text}");
    assert_eq!(production.state(0).unwrap()["release"], "2", "{text}");
    assert!(apply_dir.join("roll-production.xml").is_file(), "{text}");

    // The default branch's pipeline, every stage (gcil runs the manual jobs too: it does not
    // evaluate `rules:`; the image build is left out by its runner tag): plan, plan-production,
    // deploy-staging, deploy-production (nothing left to do), rollback-production, status. A
    // second pipeline started while it deploys staging waits for the deploy lock.
    let main = checkout(root.path(), "main-1");
    let other = checkout(root.path(), "main-2");
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| p.gcil(&main, "push", "2", &["-p", "-t", "docker"]));
        let t0 = std::time::Instant::now();
        while staging.state(0).is_none_or(|st| st["status"] != "switching") {
            if first.is_finished() || t0.elapsed().as_secs() > 180 {
                let out = first.join().unwrap();
                panic!("the staging deploy never switched: {}", log(&out));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let second = p.gcil(&other, "push", "2", &["-R", "deploy-staging"]);
        (first.join().unwrap(), second)
    });
    let text = log(&first);
    assert!(first.status.success(), "{text}");
    assert!(text.contains("Pipeline: Success"), "{text}");
    for job in [
        "plan",
        "plan-production",
        "deploy-staging",
        "deploy-production",
        "rollback-production",
        "status",
    ] {
        assert!(text.contains(&format!(" {job}: Success")), "{job}: {text}");
    }
    assert!(!text.contains("build: Success"), "{text}");
    assert!(
        text.contains("section_start:") && text.contains("section_end:"),
        "{text}"
    );
    // Staging's switch, a line per batch; the rollback's too.
    let batches: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("web: batch ") && l.contains(" done: write "))
        .collect();
    assert_eq!(batches.len(), 4, "{text}");
    assert!(text.contains("pause of 2s before batch 2/2 of web"), "{text}");
    assert_eq!(staging.state(0).unwrap()["release"], "2");
    assert_eq!(production.state(0).unwrap()["release"], "1", "rolled back: {text}");
    let statuses: Vec<&str> = text.lines().filter(|l| l.starts_with("web ")).collect();
    assert!(
        statuses.len() == 2 && statuses[0].contains(" green ") && statuses[1].contains(" blue "),
        "{statuses:?}"
    );
    let waited = log(&second);
    assert!(second.status.success(), "{waited}");
    assert!(
        waited.contains("waiting for the deploy lock of `web`, held by"),
        "the second pipeline did not wait for the lock: {waited}"
    );
    assert!(waited.contains("release 2 is live"), "{waited}");

    // plan-production's plan (made with release 2 live), applied after the rollback: the world
    // moved, so the job fails with roll's exit code.
    let stale = p.gcil(&main, "push", "2", &["-m", "-R", "deploy-production"]);
    let text = log(&stale);
    assert!(!stale.status.success(), "{text}");
    assert!(text.contains("error: the plan is stale: "), "{text}");
    assert!(text.contains("deploy-production: Failure"), "{text}");

    // The registry password never shows; the key's text neither.
    for o in [&plan, &applied, &first, &second, &stale] {
        let t = log(o);
        assert!(!t.contains(REGISTRY_PASSWORD), "{t}");
        assert!(!t.contains("BEGIN OPENSSH PRIVATE KEY"), "{t}");
    }
    // No job left its key behind.
    for d in [&mr, &apply_dir, &main, &other] {
        assert!(!d.join(".roll-ssh").exists(), "{}", d.display());
    }
}

/// The jobs' image (`scripts/roll-image`, Dockerfile.roll) builds with nothing pulled, and the
/// example's `.roll` before_script runs in it, without a network: roll, ssh reading the config
/// the script wrote, the key file only its owner reads.
#[test]
fn the_jobs_image_builds_without_pulling_and_runs_the_before_script() {
    use common::docker::{Cleanup, docker, run_label};
    let label = format!("{}-image", run_label());
    let _cleanup = Cleanup(label.clone());
    let tag = format!("roll-ci-test:{}", std::process::id());
    let built = Command::new(repo().join("scripts/roll-image"))
        .arg(&tag)
        .env("ROLL_BIN", common::roll_bin())
        .env("ROLL_IMAGE_LABELS", &label)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", log(&built));
    let ci: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("examples/gitlab-ci.yml")).unwrap()).unwrap();
    let lines: Vec<String> = ci[".roll"]["before_script"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(lines.iter().any(|l| l.contains("roll --version")), "{lines:?}");
    let script = format!(
        "set -e\ncd /tmp\n{}\nssh -F \"$ROLL_SSH_CONFIG\" -G proxy1 | grep -i '^identityfile'\nstat -c %a .roll-ssh/key\ncat .roll-ssh/known_hosts\n",
        lines.join("\n")
    );
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        &label,
        "-e",
        "SSH_PRIVATE_KEY=-----BEGIN OPENSSH PRIVATE KEY-----\r\nabc\r\n-----END OPENSSH PRIVATE KEY-----",
        "-e",
        "SSH_KNOWN_HOSTS=[proxy1]:22 ssh-ed25519 AAAA",
        &tag,
        "sh",
        "-c",
        &script,
    ]);
    let text = log(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("roll 0.1.0") || text.starts_with("roll "), "{text}");
    assert!(text.contains("identityfile /tmp/.roll-ssh/key"), "{text}");
    assert!(text.contains("\n600\n"), "{text}");
    assert!(text.contains("[proxy1]:22 ssh-ed25519 AAAA"), "{text}");
}
