//! The integration tests, one test binary: one module per area, sharing `common`. Filter by
//! module, e.g. `cargo test --test suite play::`; fixtures live beside this directory in
//! `tests/<area>/`.

mod common;

mod apps;
mod archives;
mod cli;
mod compat;
mod diagnostics;
mod docker;
mod drain;
mod events;
mod facts;
mod find;
mod get_url;
mod git;
mod gitlab;
mod lines;
mod listing;
mod lock;
mod lookups;
mod plan;
mod play;
mod published;
mod report;
mod resources;
mod retire;
mod roles;
mod rollback;
mod rollout;
mod secrets;
mod security;
mod snapshots;
mod ssh;
mod stat;
mod switch;
mod system;
mod vault;
