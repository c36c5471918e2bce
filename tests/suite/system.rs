//! `raw`, `script` and `getent` on a real sshd host report what ansible-core reported for the
//! same tasks (tests/modules/system: output kept as the host printed it, failures, `executable`;
//! a controller script with arguments, `chdir`, `creates`/`removes` in check mode and for real;
//! `getent` keys, `split`, `fail_key`, an unknown database, and its fact read as a variable).

use crate::common::oracle;

#[test]
fn every_case_reports_what_ansible_reported() {
    let played = oracle::play("system");
    oracle::assert_same(&played.want, &played.got);
}
