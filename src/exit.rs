//! Exit statuses and their codes (documented in `--help` and the README).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything ran; no host failed.
    Ok,
    /// roll itself failed at run time (I/O, an internal error).
    Error,
    /// At least one host failed a task.
    HostFailed,
    /// At least one host was unreachable (and none failed).
    Unreachable,
    /// The playbook, inventory, templates or options are invalid; nothing was run.
    InvalidInput,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted,
    /// `--detailed-exitcode` (`roll plan`, `roll play --check`): something would change.
    Changes,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::HostFailed => 2,
            Exit::Unreachable => 4,
            Exit::InvalidInput => 5,
            Exit::Interrupted => 130,
            Exit::Changes => 2,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

pub const HELP: &str = "Exit codes:
  0    success: every host ran every task it was given
  1    roll failed at run time (I/O or internal error)
  2    one or more hosts failed a task
  4    one or more hosts were unreachable (none failed)
  5    invalid input: playbook, inventory, template or options; nothing was run
       (also: refused on a host before any change, e.g. another app's site or port)
  130  interrupted (SIGINT/SIGTERM)
`roll plan --detailed-exitcode`, `roll play --check --detailed-exitcode`: 0 no changes,
2 changes, 1 an error (a host failed or unreachable).
`roll apply`: 1 also when the plan is stale (the world moved since it was made).";
