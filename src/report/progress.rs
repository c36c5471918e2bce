//! Progress on a terminal (indicatif): per task, how many hosts are done, as wide as the
//! terminal; under it, while a long task runs, one status line: the switch's batch
//! (`web: batch 2/3 → green (app3, app4), next in 27s`, counting down) or what a wait waits
//! for. The bars live on stderr, are cleared around every log line so the two never
//! interleave, and are cleared when their task ends. Only on a terminal, never under CI or `-q`.

use crate::exec::Reporter;
use crate::exec::events::Event;
use crate::modules::progress::{Progress as Said, WaitKind, secs};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

pub struct Progress {
    inner: Box<dyn Reporter>,
    multi: MultiProgress,
    bar: Option<ProgressBar>,
    /// The line under the bar, while a task says how it is getting on.
    status: Option<ProgressBar>,
    /// The switch's batch being moved or last moved (`web: batch 2/3 → green`) and its
    /// backends, which the pause's countdown follows.
    batch: Option<(String, Vec<String>)>,
    hosts: u64,
    /// Pass the progress on to the log too: it goes to a file (`roll play ... > log`) while
    /// the bars show on the terminal, and the file should tell what the bars told.
    log_progress: bool,
}

/// The terminal's width in columns (stderr's; 80 when it cannot be asked).
fn width() -> usize {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the struct given, and nothing else.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 { ws.ws_col as usize } else { 80 }
}

/// `head (a, b, c)tail` in at most `room` columns: backends left out are counted (`a, b, +3`)
/// so that the tail (the countdown) always shows.
fn fit(head: &str, backends: &[String], tail: &str, room: usize) -> String {
    let cols = |s: &str| s.chars().count();
    for shown in (0..=backends.len()).rev() {
        let mut list = backends[..shown].join(", ");
        if shown < backends.len() {
            if shown > 0 {
                list.push_str(", ");
            }
            list.push_str(&format!("+{}", backends.len() - shown));
        }
        let line = format!("{head} ({list}){tail}");
        if cols(&line) <= room || shown == 0 {
            return line;
        }
    }
    format!("{head}{tail}")
}

impl Progress {
    pub fn new(inner: Box<dyn Reporter>) -> Progress {
        Progress {
            inner,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bar: None,
            status: None,
            batch: None,
            hosts: 0,
            log_progress: false,
        }
    }

    /// Also write the progress into the log (whose stdout is not the terminal).
    pub fn with_log_progress(mut self, on: bool) -> Progress {
        self.log_progress = on;
        self
    }

    fn start(&mut self, task: &str) {
        self.finish();
        let bar = self.multi.add(ProgressBar::new(self.hosts));
        // The task's name takes what the bar and the counts leave of the terminal's width; a
        // narrow terminal gets a shorter bar, so that the name stays readable.
        let bar_cols = match width() {
            0..100 => 10,
            100..140 => 20,
            _ => 40,
        };
        let template = format!("{{spinner}} {{wide_msg}} [{{bar:{bar_cols}}}] {{pos}}/{{len}} hosts {{elapsed:>3}}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(task.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bar = Some(bar);
    }

    /// The status line under the bar: `text`, cut to the terminal's width.
    fn say(&mut self, text: String) {
        if self.bar.is_none() {
            return;
        }
        let status = self.status.get_or_insert_with(|| {
            let s = self.multi.add(ProgressBar::new_spinner());
            s.set_style(
                ProgressStyle::with_template("  {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            s
        });
        status.set_message(text);
        status.tick();
    }

    fn progress(&mut self, p: &Said) {
        let room = width().saturating_sub(3);
        match p {
            Said::BatchStart {
                app,
                batch,
                of,
                to,
                backends,
            }
            | Said::BatchDone {
                app,
                batch,
                of,
                to,
                backends,
                ..
            } => {
                let head = format!("{app}: batch {batch}/{of} → {to}");
                let line = fit(&head, backends, "", room);
                self.batch = Some((head, backends.clone()));
                self.say(line);
            }
            Said::Waiting {
                wait: WaitKind::Pause,
                left_s,
                ..
            } if self.batch.is_some() => {
                let (head, backends) = self.batch.clone().unwrap_or_default();
                let tail = format!(", next in {}", secs(left_s.unwrap_or(0.0).ceil()));
                self.say(fit(&head, &backends, &tail, room));
            }
            Said::WaitStart { .. } | Said::Waiting { .. } | Said::Note { .. } => self.say(p.message()),
            // Output lines belong to the log, not the status line.
            Said::Output { .. } => {}
            Said::WaitEnd { .. } => match self.batch.clone() {
                Some((head, backends)) => self.say(fit(&head, &backends, "", room)),
                None => self.clear_status(),
            },
        }
    }

    fn clear_status(&mut self) {
        if let Some(s) = self.status.take() {
            s.finish_and_clear();
            self.multi.remove(&s);
        }
    }

    fn finish(&mut self) {
        self.clear_status();
        self.batch = None;
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        let _ = self.multi.clear();
    }
}

impl Reporter for Progress {
    fn event(&mut self, e: &Event) {
        match e {
            Event::PlayStart { hosts, .. } => {
                self.finish();
                self.hosts = hosts.len() as u64;
            }
            Event::TaskStart { name, .. } => {
                // The banner first, then the bar under it.
                self.finish();
                self.inner.event(e);
                self.start(name);
                return;
            }
            Event::Host(r) if r.item.is_none() => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
            }
            Event::Progress { detail, .. } => {
                self.progress(detail);
                // The status line shows it; a log on the terminal has nothing to add, but for a
                // note (a resumed switch), which the next batch's line would hide at once.
                if !self.log_progress && !matches!(detail, Said::Note { .. }) {
                    return;
                }
            }
            Event::TaskEnd { .. } | Event::Recap { .. } | Event::RunEnd { .. } => self.finish(),
            _ => {}
        }
        if self.bar.is_some() {
            self.multi.suspend(|| self.inner.event(e));
        } else {
            self.inner.event(e);
        }
    }
}
