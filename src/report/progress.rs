//! Progress on a terminal (indicatif): per task, how many hosts are done; during the switch,
//! which batch runs and the pause counting down. The bar lives on stderr and is cleared around
//! every log line, so the two never interleave. Only on a terminal, never under CI or `-q`.

use crate::exec::Reporter;
use crate::exec::events::Event;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

pub struct Progress {
    inner: Box<dyn Reporter>,
    bar: Option<ProgressBar>,
    hosts: u64,
    task: String,
}

impl Progress {
    pub fn new(inner: Box<dyn Reporter>) -> Progress {
        Progress {
            inner,
            bar: None,
            hosts: 0,
            task: String::new(),
        }
    }

    fn start(&mut self, task: &str) {
        self.finish();
        let bar = ProgressBar::with_draw_target(Some(self.hosts), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg:40!} [{bar:24}] {pos}/{len} hosts {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(task.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.task = task.to_string();
        self.bar = Some(bar);
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
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
                self.inner.event(e);
                self.start(name);
                return;
            }
            Event::Host(r) if r.item.is_none() => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
            }
            Event::Progress { message, .. } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("{} · {message}", self.task));
                }
            }
            Event::Recap { .. } => self.finish(),
            _ => {}
        }
        match &self.bar {
            Some(b) => b.suspend(|| self.inner.event(e)),
            None => self.inner.event(e),
        }
    }
}
