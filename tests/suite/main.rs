//! The integration tests, one test binary: one module per area, sharing `common`. Filter by
//! module, e.g. `cargo test --test suite play::`; fixtures live beside this directory in
//! `tests/<area>/`.

mod common;

mod adhoc;
mod ansible_cfg;
mod apps;
mod bluegreen_role;
mod cli;
mod compat;
mod cron;
mod diagnostics;
mod docker;
mod drain;
mod events;
mod facts;
mod filters;
mod find;
mod gitlab;
mod haproxy;
mod inventory;
mod lines;
mod listing;
mod lock;
mod lookups;
mod packages;
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
mod services;
mod snapshots;
mod ssh;
mod stat;
mod switch;
mod users;
mod vault;
