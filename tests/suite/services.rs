//! `service` on a real Debian host without systemd (sysvinit-style: init scripts, `service`,
//! update-rc.d; a container started by the test, common/testhost.rs), on its cron service:
//! each step reports what ansible-core reported (tests/modules/services: check mode, for real,
//! again) and leaves the service running or stopped, enabled or not, as it did; `service_facts`
//! reads the same states; a missing service and `systemd`/`systemd_service` fail with Ansible's
//! message, roll's naming the host's service manager besides.

use crate::common::{oracle, testhost};

#[test]
fn sysvinit_service_steps_report_what_ansible_reported() {
    let played = testhost::play("services", &[]);
    let (mut want, mut got) = (Vec::new(), Vec::new());
    for (w, g) in played.want.iter().zip(&played.got) {
        if w.get("run") == Some(&"fail".into()) || w.get("msg").is_some() && w.get("failed") == Some(&true.into()) {
            // Ansible's message first; roll says which service manager the host has after it.
            let (wm, gm) = (w["msg"].as_str().unwrap(), g["msg"].as_str().unwrap_or(""));
            assert!(gm.starts_with(wm), "ansible: {wm}\n   roll: {gm}");
            assert_eq!((&w["failed"], &w["changed"]), (&g["failed"], &g["changed"]));
            if wm.contains("systemctl") {
                assert!(
                    gm.contains("service manager is init scripts under /etc/init.d (PID 1 is `sshd`)"),
                    "{gm}"
                );
            }
            continue;
        }
        want.push(w.clone());
        got.push(g.clone());
    }
    oracle::assert_same(&want, &got);
}
