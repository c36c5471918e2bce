//! HTTP load for the rollout tests: requests through a proxy, each on its own connection (as
//! DESIGN §6 asks, so a keep-alive connection closed by an nginx reload is neither a failure nor
//! silently resent), each answer recorded with its time on a clock the test shares.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a request was answered (seconds since the clock's start) and by what, or why not.
pub type Answer = (f64, Result<String, String>);

/// One GET with `Connection: close`: the status and the body.
pub fn get(addr: &str, path: &str) -> Result<(u16, String), String> {
    get_site(addr, "x", path)
}

/// One GET for the site named `host` (its `Host` header): of several apps' sites on one
/// address, nginx answers with the one whose `server_name` it is.
pub fn get_site(addr: &str, host: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad response {out:?}"))?;
    Ok((code, out.rsplit("\r\n\r\n").next().unwrap_or("").trim().to_string()))
}

pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Answer>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `workers` clients sending GET / to `addr` until stopped (or for at most `limit`).
    pub fn start(addr: &str, clock: Instant, workers: usize, limit: Duration) -> Load {
        Load::start_site(addr, "x", clock, workers, limit)
    }

    /// The same for the site named `host`.
    pub fn start_site(addr: &str, host: &str, clock: Instant, workers: usize, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let threads = (0..workers)
            .map(|_| {
                let (stop, seen, addr, host) = (stop.clone(), seen.clone(), addr.to_string(), host.to_string());
                std::thread::spawn(move || {
                    let begin = Instant::now();
                    while !stop.load(Ordering::SeqCst) && begin.elapsed() < limit {
                        let r = match get_site(&addr, &host, "/") {
                            Ok((200, body)) => Ok(body),
                            Ok((code, body)) => Err(format!("HTTP {code} {body}")),
                            Err(e) => Err(e),
                        };
                        seen.lock().unwrap().push((clock.elapsed().as_secs_f64(), r));
                        std::thread::sleep(Duration::from_millis(3));
                    }
                })
            })
            .collect();
        Load { stop, seen, threads }
    }

    /// Stop and return every answer in time order.
    pub fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let mut seen = self.seen.lock().unwrap().clone();
        seen.sort_by(|a, b| a.0.total_cmp(&b.0));
        seen
    }
}

/// The share of answers in `[from, to)` whose body starts with `word`, and how many there were.
pub fn share(seen: &[Answer], word: &str, from: f64, to: f64) -> (f64, usize) {
    let window: Vec<&str> = seen
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .filter_map(|(_, r)| r.as_deref().ok())
        .collect();
    let n = window.iter().filter(|b| b.starts_with(word)).count();
    (n as f64 / window.len().max(1) as f64, window.len())
}

/// A gate the test controls: answers 200 until told to fail, then 503.
pub fn gate_server(failing: Arc<AtomicBool>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let status = if failing.load(Ordering::SeqCst) {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}
