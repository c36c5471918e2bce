//! `unarchive` on a real sshd host with the host's tar and unzip reports what ansible-core
//! reported for the same archives (tests/modules/unarchive: tar.gz from the controller, tar and
//! zip with `remote_src`, `list_files`, `extra_opts`, `creates`; check mode, the run, again, and
//! after a file in the destination changed) and leaves the same trees.

use crate::common::oracle;

#[test]
fn every_case_reports_what_ansible_reported_and_leaves_the_same_tree() {
    let played = oracle::play("unarchive");
    oracle::assert_same(&played.want, &played.got);
}
