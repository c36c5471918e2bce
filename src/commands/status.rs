//! `roll status`: read every app's switch state from the proxy hosts and show it.

use crate::connection::{Connection, Connector};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::exit::Exit;
use crate::inventory::pattern;
use crate::modules::nginx_switch::State;
use crate::source::Sources;
use crate::values::value_to_string;
use std::io::Write;

/// The releases of an app's history shown in the table (`--format json` has them all).
const HISTORY_SHOWN: usize = 6;

pub fn run(args: crate::cli::StatusArgs) -> Exit {
    let json = args.proxies.format == crate::cli::Format::Json;
    let (rows, failures) = match ask_proxies(args.proxies, async |conn, dir| states(conn, dir).await) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let mut out = std::io::stdout().lock();
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(proxy, s)| {
                let mut m = serde_json::to_value(s).unwrap_or_default();
                if let Some(o) = m.as_object_mut() {
                    o.insert("proxy".into(), proxy.clone().into());
                }
                m
            })
            .collect();
        // JSON Lines, as `--format json` is everywhere: one object per line.
        for m in v {
            let _ = writeln!(out, "{m}");
        }
    } else {
        let _ = writeln!(
            out,
            "{:<12} {:<16} {:<6} {:<14} {:<8} {:<22} BACKENDS",
            "APP", "PROXY", "LIVE", "RELEASE", "BATCHES", "UPDATED (UTC)"
        );
        for (proxy, s) in &rows {
            let backends: Vec<String> = s.backends.iter().map(|(b, c)| format!("{b}={c}")).collect();
            let _ = writeln!(
                out,
                "{:<12} {:<16} {:<6} {:<14} {:<8} {:<22} {}",
                s.app,
                proxy,
                s.live,
                s.release.as_deref().unwrap_or("-"),
                format!("{}/{}", s.batches_done, s.batches_total),
                crate::clock::utc(s.updated),
                backends.join(" ")
            );
            if s.status != "live" {
                let _ = writeln!(out, "{:<12} {:<16} status: {}", "", "", s.status);
            }
            if !s.history.is_empty() {
                // Newest first: where things stand, then how they got there.
                let shown: Vec<String> = s
                    .history
                    .iter()
                    .rev()
                    .take(HISTORY_SHOWN)
                    .map(|r| format!("{} {} {}", r.release, r.colour, r.outcome.label()))
                    .collect();
                let more = s.history.len().saturating_sub(HISTORY_SHOWN);
                let _ = writeln!(
                    out,
                    "{:<12} {:<16} releases: {}{}",
                    "",
                    "",
                    shown.join(" · "),
                    if more > 0 {
                        format!(" · ({more} older)")
                    } else {
                        String::new()
                    }
                );
            }
            if !s.pending.is_empty() {
                let _ = writeln!(
                    out,
                    "{:<12} {:<16} batch under way when the run stopped: {} (on either colour; a re-run redoes it)",
                    "",
                    "",
                    s.pending.join(", ")
                );
            }
        }
    }
    if rows.is_empty() && failures.is_empty() && !json {
        eprintln!("roll: no switch state on these hosts yet (nothing was deployed with roll.nginx_switch)");
    }
    report_failures(&failures)
}

/// Print the hosts that could not be asked; unreachable (4) if there were any.
pub(crate) fn report_failures(failures: &[String]) -> Exit {
    for f in failures {
        eprintln!("error: {f}");
    }
    if failures.is_empty() {
        Exit::Ok
    } else {
        Exit::Unreachable
    }
}

/// What the proxies answered, per host name, and what failed.
pub(crate) type Answers<T> = (Vec<(String, T)>, Vec<String>);

/// Runs `ask` on each host of `hosts` (the proxies) with its state directory (the host's
/// `roll_state_dir`, rendered in its scope, else `default_dir`): the rows per host, and what
/// failed. Invalid input is reported here and returned as the exit code.
pub(crate) fn ask_proxies<T>(
    proxies: crate::cli::ProxyArgs,
    ask: impl AsyncFn(&Connection, &str) -> Result<Vec<T>, String>,
) -> Result<Answers<T>, Exit> {
    let crate::cli::ProxyArgs {
        inventory,
        hosts,
        state_dir: default_dir,
        ssh,
        ..
    } = proxies;
    let sources = Sources::new();
    let out = crate::settings::Output::detect();
    let color = out.color;
    // ansible.cfg (and ANSIBLE_INVENTORY) as `roll play` reads it: the inventory when `-i` is
    // not given, and the connection defaults.
    let cfg = crate::commands::play::ansible_config(&sources, &out, 0)?;
    let inventory = match crate::settings::inventory(inventory, &cfg) {
        Ok(i) => i,
        Err(d) => {
            eprint!("{}", Diagnostics::from(d).render(&sources, color));
            return Err(Exit::InvalidInput);
        }
    };
    let mut inv = match crate::inventory::load(&sources, &inventory, &[]) {
        Ok(i) => i,
        Err(d) => {
            eprint!("{}", d.render(&sources, color));
            return Err(Exit::InvalidInput);
        }
    };
    let hosts = match pattern::resolve(&mut inv, &hosts) {
        Ok(h) => h,
        Err(msg) => {
            let d = Diagnostic::error(format!("invalid `--hosts`: {msg}"))
                .with_help("name the proxy group, e.g. `--hosts proxy`");
            eprint!("{}", Diagnostics::from(d).render(&sources, color));
            return Err(Exit::InvalidInput);
        }
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        eprintln!("error: cannot start the async runtime");
        return Err(Exit::Error);
    };
    let opts = crate::settings::ssh_options(ssh, &cfg);
    // The state directory may be a template (`{{ sandbox_dir }}/state`): render it per host.
    let run = crate::vars::RunVars::new(std::sync::Arc::new(inv), Default::default(), String::new());
    let play = std::sync::Arc::new(crate::vars::PlayVars::default());
    Ok(rt.block_on(async {
        let connector = Connector::new(opts);
        let mut rows = Vec::new();
        let mut failures = Vec::new();
        for h in hosts {
            let host = &run.inventory.hosts[h];
            let conn = match connector.connect(&host.name, Some(&host.vars), None) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{}: {e}", host.name));
                    continue;
                }
            };
            let scope = crate::vars::Scope::value(run.clone(), play.clone(), h, Vec::new(), Default::default());
            let dir = match scope.get_attr("roll_state_dir") {
                Ok(v) if !v.is_undefined() => value_to_string(&v),
                Ok(_) => default_dir.clone(),
                Err(e) => {
                    failures.push(format!("{}: `roll_state_dir`: {e}", host.name));
                    continue;
                }
            };
            match ask(&conn, &dir).await {
                Ok(list) => rows.extend(list.into_iter().map(|s| (host.name.clone(), s))),
                Err(e) => failures.push(format!("{}: {e}", host.name)),
            }
        }
        connector.close().await;
        (rows, failures)
    }))
}

async fn states(conn: &Connection, dir: &str) -> Result<Vec<State>, String> {
    let listing = conn
        .exec(&crate::connection::Command::new(format!(
            "for f in {}/*.json; do [ -f \"$f\" ] && echo \"$f\"; done; true",
            crate::shell::quote(dir)
        )))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for path in listing.stdout_text().lines() {
        let bytes = conn
            .read_file(path, None)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let s: State = serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
        out.push(s);
    }
    Ok(out)
}
