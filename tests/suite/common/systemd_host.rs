//! A Debian host with systemd as PID 1 for the systemd-module tests: a container of
//! `roll-systemd-host:bookworm` (scripts/systemd-host-image) booted by `scripts/systemd-host`
//! (the same script the ansible-core oracle's `--systemd-host` mode uses), which waits until
//! `systemctl is-system-running` says running or degraded and sshd answers; removed when
//! dropped. Its container carries `roll.systemdhost=1` and the run's label. It is a
//! [`TestHost`] of the other kind.

#![allow(dead_code)]

use super::testhost::{Played, SYSTEMD, TestHost};

/// Boot one; panics naming what is missing (the Docker engine, the image) or what did not
/// start (systemd's state, its failed units).
pub fn up() -> TestHost {
    TestHost::start(SYSTEMD)
}

/// Run `tests/modules/NAME/play.yml` with roll (and `extra` arguments) on a freshly booted
/// systemd host; panics if the play fails or the counts of results differ.
pub fn play(name: &str, extra: &[&str]) -> Played {
    super::testhost::play_on(SYSTEMD, name, extra)
}
