//! The human log, in Ansible's words and layout (banners, `ok: [host]`, PLAY RECAP), so that
//! existing log greps keep working.

use crate::exec::Reporter;
use crate::exec::events::{Event, HostResult, Stats, Status};
use crate::modules::Change;
use crate::modules::progress::{Progress, WaitKind, secs};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// A log without a terminal says a long wait goes on at most this often.
const HEARTBEAT: Duration = Duration::from_secs(30);

pub struct Human<W: Write + Send> {
    out: W,
    color: bool,
    verbose: u8,
    diff: bool,
    check: bool,
    /// GitLab CI: each play (and `serial` batch) in a collapsible section.
    sections: bool,
    open_section: Option<String>,
    next_section: usize,
    /// Check mode: the changes seen, by symbol, for the tally line.
    tally: [usize; 5],
    /// Waits under way, by host and what they wait for: when the log last spoke of each.
    waits: HashMap<(String, String), Instant>,
    /// How often at most a long wait's heartbeat line comes (30 s; shorter in unit tests).
    pub(super) heartbeat: Duration,
}

/// How a dry run shows a change: `+` start or create, `~` change, `-/+` replace, `-` stop or
/// remove (Terraform's symbols), with the tally bucket it counts in: a stopped container is
/// kept, so it is counted apart from what is removed.
fn symbol(change: Change) -> (&'static str, usize) {
    match change {
        Change::Create | Change::Start => ("+", 0),
        Change::Update => ("~", 1),
        Change::Replace => ("-/+", 2),
        Change::Remove => ("-", 3),
        Change::Stop => ("-", 4),
    }
}

const WIDTH: usize = 80;

impl<W: Write + Send> Human<W> {
    pub fn new(out: W, color: bool, verbose: u8, diff: bool, check: bool) -> Self {
        Human {
            out,
            color,
            verbose,
            diff,
            check,
            sections: false,
            open_section: None,
            next_section: 0,
            tally: [0; 5],
            waits: HashMap::new(),
            heartbeat: HEARTBEAT,
        }
    }

    /// Mark plays as GitLab CI sections (`section_start` / `section_end` lines).
    pub fn with_sections(mut self, on: bool) -> Self {
        self.sections = on;
        self
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// GitLab's section markers: `ESC[0K` erases the line, so the marker does not show.
    fn end_section(&mut self) {
        if let Some(id) = self.open_section.take() {
            let _ = write!(self.out, "\x1b[0Ksection_end:{}:{id}\r\x1b[0K", Self::now());
        }
    }

    fn start_section(&mut self, title: &str) {
        if !self.sections {
            return;
        }
        self.end_section();
        self.next_section += 1;
        let id = format!("roll_play_{}", self.next_section);
        let _ = writeln!(
            self.out,
            "\x1b[0Ksection_start:{}:{id}[collapsed=false]\r\x1b[0K{title}",
            Self::now()
        );
        self.open_section = Some(id);
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn banner(&mut self, title: &str) {
        let stars = WIDTH.saturating_sub(title.len() + 1).max(3);
        let _ = writeln!(self.out, "\n{title} {}", "*".repeat(stars));
    }

    fn host_label(r: &HostResult) -> String {
        match &r.delegated_to {
            Some(d) => format!("[{} -> {}]", r.host, d),
            None => format!("[{}]", r.host),
        }
    }

    fn host(&mut self, r: &HostResult) {
        if self.diff && !r.diffs.is_empty() && r.status != Status::Skipped {
            for d in &r.diffs {
                let _ = write!(self.out, "{}", d.render());
            }
        }
        let label = Self::host_label(r);
        let item = r.item.as_ref().map(|i| format!(" => (item={i})")).unwrap_or_default();
        let compact = python_json(&sorted(&shown(&r.result)));
        let line = match r.status {
            Status::Ok | Status::Changed => {
                let (word, code) = if r.status == Status::Changed {
                    ("changed", "33")
                } else {
                    ("ok", "32")
                };
                let mut line = format!("{word}: {label}{item}");
                if let Some(dbg) = &r.debug {
                    line.push_str(&format!(" => {}", pretty(&sorted(dbg))));
                } else if r.would_run {
                    let cmd = r.result.get("cmd").map(cmd_text).unwrap_or_default();
                    line.push_str(&format!(" => (would run) {cmd}"));
                } else if self.verbose > 0 {
                    line.push_str(&format!(" => {compact}"));
                }
                self.paint(&line, code)
            }
            Status::Skipped => {
                // Ansible's default callback names only the host on `skipping:`, never where the
                // task would have been delegated (it shows `[app1 -> proxy1]` on every other line).
                let label = format!("[{}]", r.host);
                if r.item.is_some() {
                    self.paint(&format!("skipping: {label}{item} "), "36")
                } else {
                    self.paint(&format!("skipping: {label}"), "36")
                }
            }
            Status::Failed if r.item.is_some() => self.paint(
                &format!(
                    "failed: {label} (item={}) => {compact}",
                    r.item.as_deref().unwrap_or("")
                ),
                "31",
            ),
            Status::Failed => {
                // A loop's failure was already shown item by item.
                if r.result.get("results").is_some() {
                    if r.ignored {
                        let _ = writeln!(self.out, "{}", self.paint("...ignoring", "36"));
                    }
                    return;
                }
                self.paint(&format!("fatal: {label}: FAILED! => {compact}"), "31")
            }
            Status::Unreachable => self.paint(&format!("fatal: {label}: UNREACHABLE! => {compact}"), "31"),
        };
        // A loop's own summary line is shown only when every item was skipped.
        if r.item.is_none() && r.result.get("results").is_some() && r.status != Status::Skipped {
            return;
        }
        let _ = writeln!(self.out, "{line}");
        if self.check && r.status == Status::Changed {
            let mut shown: Vec<&str> = Vec::new();
            for d in &r.diffs {
                // A file whose content and mode both change is one change.
                if shown.contains(&d.path.as_str()) {
                    continue;
                }
                shown.push(&d.path);
                let (sym, k) = symbol(d.change);
                self.tally[k] += 1;
                let _ = writeln!(self.out, "    {sym} {}", d.path);
            }
            self.switch_plan(&r.result);
        }
        if r.ignored && r.status == Status::Failed {
            let _ = writeln!(self.out, "{}", self.paint("...ignoring", "36"));
        }
    }

    /// A dry run's batch plan (`roll.nginx_switch`): which backends move when, and the
    /// expected database peak when the task knows the database.
    fn switch_plan(&mut self, result: &serde_json::Value) {
        let Some(plan) = result.get("plan").and_then(|p| p.as_array()) else {
            return;
        };
        for b in plan {
            let names: Vec<&str> = b["backends"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let mut line = format!(
                "    batch {} at +{}s: {}",
                b["batch"],
                b["offset_s"].as_f64().unwrap_or(0.0),
                names.join(", ")
            );
            if let (Some(p), Some(m)) = (b["expected_peak"].as_u64(), b["max_connections"].as_u64()) {
                line.push_str(&format!("  (expected database peak {p} of {m})"));
            }
            let _ = writeln!(self.out, "{line}");
            // With `retire`: what the batch stops once it is live on every proxy.
            if let Some(stops) = b.get("stops").and_then(|s| s.as_array()) {
                let _ = writeln!(self.out, "      then stops {}", retirements(stops));
            }
        }
        if let Some(left) = result.get("unretired").and_then(|s| s.as_array()) {
            let _ = writeln!(
                self.out,
                "    first stops {} (left running by a failed retirement)",
                retirements(left)
            );
        }
        if result.get("on_failure").and_then(|v| v.as_str()) == Some("abort") {
            let to = result
                .get("abort_to")
                .and_then(|v| v.as_str())
                .unwrap_or("the live colour");
            let _ = writeln!(
                self.out,
                "    a failed batch moves every batch back to {to} (on_failure: abort)"
            );
        }
        if let Some(t) = result.get("expected_s").and_then(|v| v.as_f64()) {
            let n = plan.len();
            let _ = writeln!(
                self.out,
                "    expected duration: {t}s ({n} batch{})",
                if n == 1 { "" } else { "es" }
            );
        }
    }

    /// How a long task goes on, for a log that has no progress bar (CI, a pipe): a line per
    /// switch batch with where its time went, a line when a wait starts and when it ends, and
    /// between them a heartbeat at most every 30 s.
    fn progress(&mut self, host: &str, p: &Progress) {
        let line = match p {
            Progress::BatchStart { .. } => return,
            Progress::BatchDone {
                write_ms,
                validate_ms,
                reload_ms,
                gate_ms,
                ..
            } => format!(
                "{}: write {}, validate {}, reload {}, gate {}",
                p.message(),
                ms(*write_ms),
                ms(*validate_ms),
                ms(*reload_ms),
                ms(*gate_ms)
            ),
            Progress::Note { text } => text.clone(),
            Progress::Output { line, .. } => line.clone(),
            Progress::WaitStart { wait, what, limit_s } => {
                self.waits.insert((host.to_string(), what.clone()), Instant::now());
                match (wait, limit_s) {
                    (WaitKind::Pause, Some(l)) => format!("pause of {} before {what}", secs(*l)),
                    _ => p.message(),
                }
            }
            Progress::Waiting { what, .. } => {
                let key = (host.to_string(), what.clone());
                match self.waits.get(&key) {
                    Some(t) if t.elapsed() < self.heartbeat => return,
                    _ => {}
                }
                self.waits.insert(key, Instant::now());
                format!("still {}", p.message())
            }
            Progress::WaitEnd { wait, what, waited_s } => {
                self.waits.remove(&(host.to_string(), what.clone()));
                match wait {
                    WaitKind::Pause => format!("pause before {what} over after {}", secs(*waited_s)),
                    _ => p.message(),
                }
            }
        };
        let _ = writeln!(self.out, "{}", self.paint(&format!("[{host}] {line}"), "2"));
    }

    fn recap(&mut self, hosts: &[(String, Stats)]) {
        self.banner("PLAY RECAP");
        for (h, s) in hosts {
            let col = |name: &str, n: u32| format!("{name}={n:<4}");
            let line = format!(
                "{:<26} : {} {} {} {} {} {} {}",
                h,
                col("ok", s.ok),
                col("changed", s.changed),
                col("unreachable", s.unreachable),
                col("failed", s.failed),
                col("skipped", s.skipped),
                col("rescued", s.rescued),
                col("ignored", s.ignored)
            );
            let _ = writeln!(self.out, "{line}");
        }
        let _ = writeln!(self.out);
    }
}

/// A step's time in the per-batch line: `12ms`, `1.4s`.
fn ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{}ms", ms.round())
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

fn cmd_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(words) => {
            let w: Vec<String> = words.iter().map(|x| x.as_str().unwrap_or("").to_string()).collect();
            crate::shell::join(&w)
        }
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The result as Ansible shows it: without its own `failed`/`skipped` flags.
pub(super) fn shown(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let serde_json::Value::Object(m) = &mut v {
        m.remove("failed");
        if m.get("skipped") == Some(&serde_json::Value::Bool(false)) {
            m.remove("skipped");
        }
    }
    v
}

/// JSON with Python's `json.dumps` separators (`, ` and `: `), as Ansible prints it.
fn python_json(v: &serde_json::Value) -> String {
    struct Py;
    impl serde_json::ser::Formatter for Py {
        fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
            if first { Ok(()) } else { w.write_all(b", ") }
        }
        fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            w.write_all(b": ")
        }
    }
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, Py);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Keys sorted, as Ansible prints results.
pub(super) fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

pub(super) fn pretty(v: &serde_json::Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

impl<W: Write + Send> Reporter for Human<W> {
    fn event(&mut self, e: &Event) {
        match e {
            Event::PlayStart { name, .. } => {
                let title = if self.check {
                    format!("PLAY [{name}] [CHECK MODE]")
                } else {
                    format!("PLAY [{name}]")
                };
                self.start_section(&title);
                self.banner(&title)
            }
            Event::NoHostsMatched => {
                let _ = writeln!(self.out, "{}", self.paint("skipping: no hosts matched", "36"));
            }
            Event::TaskStart { name, handler } => {
                let title = if *handler {
                    format!("RUNNING HANDLER [{name}]")
                } else {
                    format!("TASK [{name}]")
                };
                self.banner(&title);
            }
            Event::Host(r) => self.host(r),
            Event::Retry {
                host,
                task,
                retries_left,
            } => {
                let _ = writeln!(
                    self.out,
                    "FAILED - RETRYING: [{host}]: {task} ({retries_left} retries left)."
                );
            }
            Event::NoMoreHosts => self.banner("NO MORE HOSTS LEFT"),
            Event::Included { target, hosts, item } => {
                let item = item.as_ref().map(|i| format!(" => (item={i})")).unwrap_or_default();
                let _ = writeln!(
                    self.out,
                    "{}",
                    self.paint(&format!("included: {target} for {}{item}", hosts.join(", ")), "36")
                );
            }
            Event::Warning { message } => eprintln!("[WARNING]: {message}"),
            // On a terminal the progress bar shows these instead (it does not pass them on).
            Event::Progress { host, detail, .. } => self.progress(host, detail),
            // For machine readers only.
            Event::RunStart { .. } | Event::TaskEnd { .. } | Event::RunEnd { .. } => return,
            Event::Recap { hosts } => {
                self.end_section();
                self.recap(hosts);
                if self.check {
                    let [add, change, replace, remove, stop] = self.tally;
                    // Stops go last, and only when there are any, so that the line's start
                    // stays what log greps know.
                    let stops = if stop > 0 {
                        format!(", {stop} to stop")
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        self.out,
                        "Dry run: {add} to add, {change} to change, {replace} to replace, {remove} to remove{stops}."
                    );
                }
            }
        }
        let _ = self.out.flush();
    }
}

/// `web-app1-blue on app1, web-app2-blue on app2` (a command is quoted in backticks).
fn retirements(stops: &[serde_json::Value]) -> String {
    stops
        .iter()
        .map(|s| {
            let on = s["backend"].as_str().unwrap_or_default();
            match (s["container"].as_str(), s["command"].as_str()) {
                (Some(c), _) => format!("{c} on {on}"),
                (None, Some(c)) => format!("`{c}` on {on}"),
                (None, None) => on.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
