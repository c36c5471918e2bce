//! The human log, in Ansible's words and layout (banners, `ok: [host]`, PLAY RECAP), so that
//! existing log greps keep working.

use crate::exec::Reporter;
use crate::exec::events::{Event, HostResult, Stats, Status};
use crate::modules::Change;
use std::io::Write;

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
    tally: [usize; 4],
}

/// How a dry run shows a change: `+` start or create, `~` change, `-/+` replace, `-` stop or
/// remove (Terraform's symbols), with the tally bucket it counts in.
fn symbol(change: Change) -> (&'static str, usize) {
    match change {
        Change::Create | Change::Start => ("+", 0),
        Change::Update => ("~", 1),
        Change::Replace => ("-/+", 2),
        Change::Stop | Change::Remove => ("-", 3),
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
            tally: [0; 4],
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
        }
        if let Some(t) = result.get("expected_s").and_then(|v| v.as_f64()) {
            let _ = writeln!(self.out, "    expected duration: {t}s ({} batches)", plan.len());
        }
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
fn shown(v: &serde_json::Value) -> serde_json::Value {
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
fn sorted(v: &serde_json::Value) -> serde_json::Value {
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

fn pretty(v: &serde_json::Value) -> String {
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
            // For the progress bar and machine readers only.
            Event::Progress { .. } | Event::RunStart { .. } | Event::TaskEnd { .. } | Event::RunEnd { .. } => return,
            Event::Recap { hosts } => {
                self.end_section();
                self.recap(hosts);
                if self.check {
                    let [add, change, replace, remove] = self.tally;
                    let _ = writeln!(
                        self.out,
                        "Dry run: {add} to add, {change} to change, {replace} to replace, {remove} to remove."
                    );
                }
            }
        }
        let _ = self.out.flush();
    }
}
