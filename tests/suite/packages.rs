//! `apt` and `package` on a real Debian host (a container started by the test,
//! common/testhost.rs) with real packages from the Debian mirror (`hello`, `tree`): each step
//! reports what ansible-core reported (tests/modules/packages: check mode, for real, again) and
//! leaves dpkg's state as it did; `yum`/`dnf` fail there, roll's naming the host's manager.

use crate::common::{oracle, testhost};

#[test]
fn apt_steps_report_what_ansible_reported_with_real_debian_packages() {
    let played = testhost::play("packages", &[]);
    let (mut want, mut got) = (Vec::new(), Vec::new());
    for (w, g) in played.want.iter().zip(&played.got) {
        let msg = w.get("msg");
        if msg.is_some_and(|m| m.is_array()) {
            // ansible-core's yum and dnf fail on a Debian host looking for dnf's backend; roll
            // says which manager the host has.
            assert_eq!((&w["failed"], &w["changed"]), (&g["failed"], &g["changed"]), "{g}");
            let gm = g["msg"].as_str().unwrap_or("");
            assert!(gm.contains("its package manager is `apt-get`"), "{gm}");
            continue;
        }
        want.push(w.clone());
        got.push(g.clone());
    }
    let differ = oracle::differences(&want, &got);
    assert!(
        differ.is_empty(),
        "{} results differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
