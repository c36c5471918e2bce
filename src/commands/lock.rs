//! `roll lock status | release`: the deploy locks (`roll.deploy_lock`) on the proxy hosts.

use super::status::{ask_proxies, report_failures};
use crate::cli::{Format, LockAction, LockArgs};
use crate::clock::utc;
use crate::connection::{Command, Connection};
use crate::exit::Exit;
use crate::modules::deploy_lock::{Lock, Releaser, release_script};
use crate::shell::quote;
use std::io::Write;

pub fn run(args: LockArgs) -> Exit {
    match args.action {
        LockAction::Status => status(args),
        LockAction::Release => release(args),
    }
}

/// The host's clock and every lock in `dir`.
async fn locks(conn: &Connection, dir: &str) -> Result<Vec<(u64, Lock)>, String> {
    let script = format!(
        "date +%s; for f in {}/*.lock; do [ -f \"$f\" ] && {{ cat \"$f\"; echo; }}; done; true",
        quote(dir)
    );
    let out = conn.exec(&Command::new(script)).await.map_err(|e| e.to_string())?;
    let text = out.stdout_text();
    let mut lines = text.lines();
    let now: u64 = lines.next().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Lock>(l)
                .map(|lock| (now, lock))
                .map_err(|e| format!("unreadable lock in {dir}: {e}"))
        })
        .collect()
}

fn status(args: LockArgs) -> Exit {
    let app = args.app.clone();
    let json = args.proxies.format == Format::Json;
    let (rows, failures) = match ask_proxies(args.proxies, async |c, d| locks(c, d).await) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(_, (_, l))| app.as_ref().is_none_or(|a| *a == l.app))
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(proxy, (now, l))| {
                let mut m = serde_json::to_value(l).unwrap_or_default();
                if let Some(o) = m.as_object_mut() {
                    o.insert("proxy".into(), proxy.clone().into());
                    o.insert("expired".into(), (l.expires <= *now).into());
                }
                m
            })
            .collect();
        // JSON Lines, as `--format json` is everywhere: one object per line.
        for m in v {
            let _ = writeln!(out, "{m}");
        }
    } else if rows.is_empty() {
        let _ = writeln!(out, "no deploy locks");
    } else {
        let _ = writeln!(
            out,
            "{:<12} {:<16} {:<21} {:<21} HOLDER",
            "APP", "PROXY", "SINCE (UTC)", "EXPIRES (UTC)"
        );
        for (proxy, (now, l)) in &rows {
            let expired = if l.expires <= *now { " (expired)" } else { "" };
            let _ = writeln!(
                out,
                "{:<12} {:<16} {:<21} {:<21} {}{expired}",
                l.app,
                proxy,
                utc(l.started),
                utc(l.expires),
                l.holder
            );
        }
    }
    report_failures(&failures)
}

fn release(args: LockArgs) -> Exit {
    let Some(app) = args.app.clone() else {
        eprintln!(
            "error: `roll lock release` needs `--app APP`\n  = help: `roll lock status -i INVENTORY` lists the locks"
        );
        return Exit::InvalidInput;
    };
    let a = app.clone();
    let (rows, failures) = match ask_proxies(args.proxies, async |c, d| {
        let script = release_script(
            d,
            &a,
            None,
            Releaser::Anyone,
            "lock released by hand (roll lock release)",
        );
        let out = c.exec(&Command::new(script)).await.map_err(|e| e.to_string())?;
        if out.rc != 0 {
            return Err(out.stderr_text().trim().to_string());
        }
        Ok(vec![out.stdout_text().contains("released")])
    }) {
        Ok(r) => r,
        Err(e) => return e,
    };
    for (proxy, released) in &rows {
        if *released {
            eprintln!("released the deploy lock of `{app}` on {proxy}");
        } else {
            eprintln!("no deploy lock of `{app}` on {proxy}");
        }
    }
    report_failures(&failures)
}
