//! roll's demo app: a small HTTP service that answers with its colour and release, has
//! `/health`, and, given a database address, keeps a pool of real MariaDB connections that it
//! uses on every request. Built as a static binary for a `FROM scratch` image.
//!
//! Environment: `PORT` (8080), `BIND` (0.0.0.0), `COLOUR`, `RELEASE`, `HEALTH` (`ok`, or `fail` to never become
//! healthy), and for the database `DB_ADDR` (host:port), `DB_USER`, `DB_PASSWORD`, `DB_POOL` (4).

mod mysql;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

struct App {
    /// `APP_NAME`: several apps of this image behind one proxy say which one answered (a prefix
    /// of the body and an `X-App` header); unset, the answer is as it always was.
    name: Option<String>,
    colour: String,
    release: String,
    healthy: bool,
    pool: Option<mysql::Pool>,
}

/// `docker stop` sends SIGTERM. As PID 1 of its container the app would ignore it (the kernel
/// drops default-action signals for PID 1) and be killed only after docker's 10 s grace.
extern "C" fn on_term(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

fn main() {
    // SAFETY: installs a handler that only calls an async-signal-safe function.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    // `roll-demo migrate`: a one-off task, as a release's database migration would be.
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        if let Ok(addr) = std::env::var("DB_ADDR") {
            let p = mysql::Pool::new(addr, env("DB_USER", "root"), env("DB_PASSWORD", ""), 1);
            if let Err(e) = p.ping() {
                eprintln!("roll-demo: migrate: {e}");
                std::process::exit(1);
            }
        }
        println!("roll-demo: migrations of release {} applied", env("RELEASE", "dev"));
        return;
    }
    let port = env("PORT", "8080");
    let pool = std::env::var("DB_ADDR").ok().filter(|a| !a.is_empty()).map(|addr| {
        let size = env("DB_POOL", "4").parse().unwrap_or(4);
        let p = mysql::Pool::new(addr, env("DB_USER", "root"), env("DB_PASSWORD", ""), size);
        // The pool opens whole with the first request (or at start with DB_POOL_EAGER=1), as
        // app servers' pools do: this is what doubles the database's connections when all
        // backends move to a new colour at once, while the old colour still holds its pools.
        if env("DB_POOL_EAGER", "0") == "1" {
            p.fill();
        }
        p
    });
    let app = Arc::new(App {
        name: std::env::var("APP_NAME").ok().filter(|n| !n.is_empty()),
        colour: env("COLOUR", "blue"),
        release: env("RELEASE", "dev"),
        healthy: env("HEALTH", "ok") != "fail",
        pool,
    });
    // In a container the app listens on every address; tests on this machine set BIND=127.0.0.1.
    let bind = env("BIND", "0.0.0.0");
    let listener = TcpListener::bind(format!("{bind}:{port}")).unwrap_or_else(|e| {
        eprintln!("roll-demo: cannot listen on port {port}: {e}");
        std::process::exit(1)
    });
    eprintln!("roll-demo: {} {} listening on {port}", app.colour, app.release);
    for stream in listener.incoming().flatten() {
        let app = app.clone();
        std::thread::spawn(move || serve(app, stream));
    }
}

/// HTTP/1.1 with keep-alive, enough for nginx upstreams, curl and load tests.
fn serve(app: Arc<App>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(75)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_or(true, |n| n == 0) {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut close = line.contains("HTTP/1.0");
        let mut body_len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).map_or(true, |n| n == 0) {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if lower == "connection: close" {
                close = true;
            } else if let Some(v) = lower.strip_prefix("content-length:") {
                body_len = v.trim().parse().unwrap_or(0);
            }
        }
        if body_len > 0 {
            let mut body = vec![0; body_len.min(1 << 20)];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
        }
        let (status, body) = respond(&app, &path);
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Colour: {}\r\n{}{}\r\n{body}",
            body.len(),
            app.colour,
            app.name.as_ref().map(|n| format!("X-App: {n}\r\n")).unwrap_or_default(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if out.write_all(resp.as_bytes()).is_err() || close {
            return;
        }
    }
}

fn respond(app: &App, path: &str) -> (&'static str, String) {
    match path {
        "/health" if app.healthy => ("200 OK", "ok\n".into()),
        "/health" => ("503 Service Unavailable", "unhealthy\n".into()),
        _ => {
            if let Some(pool) = &app.pool
                && let Err(e) = pool.ping()
            {
                return ("503 Service Unavailable", format!("database: {e}\n"));
            }
            let name = app.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default();
            ("200 OK", format!("{name}{} {}\n", app.colour, app.release))
        }
    }
}
