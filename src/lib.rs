//! roll: Ansible-style rollouts of docker web apps behind nginx.
//!
//! The pipeline runs one way, each stage a function from one owned type to the next:
//! `source` + `yaml` (load, spans) → `playbook` / `inventory` (parse) → `playbook::check`
//! (every diagnostic, before any host is touched) → `vars` (precedence, templates) →
//! `exec` (scheduler, per-host task loop, handlers, failure policy) over `connection`, running
//! `modules` (check → apply) → `report` (human log, JSON Lines) from one event stream.

pub mod cli;
pub mod commands;
pub mod connection;
pub mod diagnostic;
pub mod exec;
pub mod exit;
pub mod inventory;
pub mod modules;
pub mod playbook;
pub mod report;
pub mod secrets;
pub mod settings;
pub mod shell;
pub mod source;
pub mod vars;
pub mod yaml;

use clap::{CommandFactory, Parser};

/// Parse the command line and run the subcommand; returns the process exit status.
pub fn run() -> exit::Exit {
    raise_open_files_limit();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::Exit::InvalidInput
            } else {
                exit::Exit::Ok
            };
        }
    };
    match cli.command {
        cli::Command::Play(a) => commands::play::run(a),
        cli::Command::Inventory(a) => commands::inventory::run(a),
        cli::Command::Status(a) => commands::status::run(a),
        cli::Command::Lock(a) => commands::lock::run(a),
        cli::Command::Plan(a) => commands::plan::plan(a),
        cli::Command::Apply(a) => commands::plan::apply(a),
        cli::Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli::Cli::command(), "roll", &mut std::io::stdout());
            exit::Exit::Ok
        }
    }
}

/// A play holds about four descriptors per host while its connections are open (measured:
/// 2,023 on 500 hosts, benches/fleet_scale.rs), past the usual soft limit of 1,024. Raise the
/// soft limit to the hard one, as cargo and Go programs do; a library caller keeps its own.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
