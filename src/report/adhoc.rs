//! `roll run`'s log: Ansible's ad-hoc layout (the `minimal` callback, `oneline` with `-o`), and
//! the lines of long commands as they arrive, each prefixed by its host.

use crate::connection::OutStream;
use crate::exec::Reporter;
use crate::exec::events::{Event, HostResult, Status};
use crate::modules::progress::Progress;
use std::collections::HashSet;
use std::io::Write;

pub struct AdHoc<W: Write + Send> {
    out: W,
    color: bool,
    one_line: bool,
    diff: bool,
    /// The module prints as `command` does (`host | CHANGED | rc=0 >>` then its output), not as
    /// JSON: Ansible's `MODULE_NO_JSON`, the free-form command modules.
    command_like: bool,
    /// Hosts whose output was already shown line by line.
    streamed: HashSet<String>,
}

impl<W: Write + Send> AdHoc<W> {
    pub fn new(out: W, color: bool, one_line: bool, diff: bool, command_like: bool) -> Self {
        AdHoc {
            out,
            color,
            one_line,
            diff,
            command_like,
            streamed: HashSet::new(),
        }
    }

    fn paint(&self, s: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[0;{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn line(&mut self, host: &str, stream: OutStream, line: &str) {
        self.streamed.insert(host.to_string());
        let text = format!("{host} | {line}");
        let text = match stream {
            OutStream::Stdout => text,
            OutStream::Stderr => self.paint(&text, "31"),
        };
        let _ = writeln!(self.out, "{text}");
    }

    fn host(&mut self, r: &HostResult) {
        if r.item.is_some() {
            return;
        }
        if self.diff && !r.diffs.is_empty() && r.status != Status::Skipped {
            for d in &r.diffs {
                let _ = write!(self.out, "{}", d.render());
            }
        }
        let host = &r.host;
        let (caption, code) = match r.status {
            Status::Changed => ("CHANGED", "33"),
            Status::Ok => ("SUCCESS", "32"),
            Status::Failed => ("FAILED", "31"),
            Status::Unreachable => ("UNREACHABLE!", "31"),
            Status::Skipped => ("SKIPPED", "36"),
        };
        // `-C` with `command`: Ansible skips the command and says so.
        let text = if r.status == Status::Skipped || r.would_run {
            format!("{host} | SKIPPED")
        } else if r.status == Status::Unreachable {
            let msg = r.result.get("msg").and_then(|m| m.as_str()).unwrap_or("");
            if self.one_line {
                format!("{host} | UNREACHABLE!: {msg}")
            } else {
                format!("{host} | UNREACHABLE! => {}", json(&r.result, false))
            }
        } else if self.command_like && r.result.get("rc").is_some() {
            self.command(r, caption)
        } else {
            let caption = if r.status == Status::Failed { "FAILED!" } else { caption };
            format!("{host} | {caption} => {}", json(&r.result, self.one_line))
        };
        let text = self.paint(&text, code);
        let _ = writeln!(self.out, "{text}");
    }

    /// `host | CHANGED | rc=0 >>` and the output, as Ansible's `_command_generic_msg` joins it
    /// (stdout, stderr and msg back to back); a host whose lines were streamed has them above.
    fn command(&self, r: &HostResult, caption: &str) -> String {
        let field = |k: &str| r.result.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let rc = r.result.get("rc").map_or("-1".to_string(), |v| v.to_string());
        let (stdout, stderr, msg) = (field("stdout"), field("stderr"), field("msg"));
        if self.one_line {
            let flat = |s: &str| s.replace('\n', "\\n").replace('\r', "\\r");
            let mut t = format!("{} | {caption} | rc={rc} | (stdout) {}", r.host, flat(&stdout));
            if !stderr.is_empty() {
                t.push_str(&format!(" (stderr) {}", flat(&stderr)));
            }
            return t;
        }
        if self.streamed.contains(&r.host) {
            let head = format!("{} | {caption} | rc={rc} >>", r.host);
            return if msg.is_empty() { head } else { format!("{head}\n{msg}") };
        }
        format!("{} | {caption} | rc={rc} >>\n{stdout}{stderr}{msg}", r.host)
    }
}

/// A result as Ansible's callbacks dump it: keys sorted, four-space indent, or (`-o`) on one
/// line as `json.dumps(indent=0)` without its newlines.
fn json(v: &serde_json::Value, one_line: bool) -> String {
    let v = super::human::sorted(&super::human::shown(v));
    if one_line {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        let _ = serde::Serialize::serialize(&v, &mut ser);
        return String::from_utf8_lossy(&buf).replace('\n', "");
    }
    super::human::pretty(&v)
}

impl<W: Write + Send> Reporter for AdHoc<W> {
    fn event(&mut self, e: &Event) {
        match e {
            Event::Progress {
                host,
                detail: Progress::Output { stream, line },
                ..
            } => self.line(host, *stream, line),
            Event::Host(r) => self.host(r),
            Event::Warning { message } => eprintln!("[WARNING]: {message}"),
            _ => {}
        }
        let _ = self.out.flush();
    }
}
