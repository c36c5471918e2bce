//! `--junit FILE`: the run as a JUnit XML report for CI (GitLab shows it in merge requests):
//! one testsuite per play, one testcase per task and host (classname = host), failures with
//! the message and the tail of stderr, unreachable hosts as errors, skips as skipped.

use crate::exec::Reporter;
use crate::exec::events::{Event, HostResult, Status};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::path::PathBuf;
use std::time::Duration;

pub struct Junit {
    path: PathBuf,
    suites: Vec<TestSuite>,
    task: String,
}

impl Junit {
    pub fn new(path: PathBuf) -> Junit {
        Junit {
            path,
            suites: Vec::new(),
            task: String::new(),
        }
    }

    fn case(&self, r: &HostResult) -> TestCase {
        let text = |k: &str| r.result.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let status = match r.status {
            Status::Ok | Status::Changed => TestCaseStatus::success(),
            Status::Skipped => TestCaseStatus::skipped(),
            Status::Failed if r.ignored => TestCaseStatus::success(),
            Status::Failed | Status::Unreachable => {
                let kind = if r.status == Status::Failed {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut s = TestCaseStatus::non_success(kind);
                let msg = if r.censored {
                    "the output has been hidden due to the 'no_log: true' specified for this result".to_string()
                } else {
                    text("msg")
                };
                s.set_message(if msg.is_empty() { "failed".to_string() } else { msg });
                s.set_type(if r.status == Status::Failed {
                    "failed"
                } else {
                    "unreachable"
                });
                let stderr = if r.censored { String::new() } else { text("stderr") };
                if !stderr.is_empty() {
                    let lines: Vec<&str> = stderr.lines().collect();
                    s.set_description(lines[lines.len().saturating_sub(20)..].join("\n"));
                }
                s
            }
        };
        let mut case = TestCase::new(self.task.clone(), status);
        case.set_classname(r.host.clone());
        case.set_time(Duration::from_millis(r.duration_ms));
        case
    }

    fn write(&mut self) {
        let mut report = Report::new("roll");
        report.add_test_suites(std::mem::take(&mut self.suites));
        let written = report
            .to_string()
            .map_err(|e| e.to_string())
            .and_then(|xml| std::fs::write(&self.path, xml).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!(
                "[roll] warning: cannot write the JUnit report {}: {e}",
                self.path.display()
            );
        }
    }
}

impl Reporter for Junit {
    fn event(&mut self, e: &Event) {
        match e {
            // A play run in `serial` batches starts again under the same name: one suite.
            Event::PlayStart { name, .. } if self.suites.last().is_none_or(|s| s.name.as_str() != name) => {
                self.suites.push(TestSuite::new(name.clone()));
            }
            Event::TaskStart { name, .. } => self.task = name.clone(),
            // A loop's items are in its total, which comes last.
            Event::Host(r) if r.item.is_none() => {
                let case = self.case(r);
                if self.suites.is_empty() {
                    self.suites.push(TestSuite::new("play"));
                }
                if let Some(s) = self.suites.last_mut() {
                    s.add_test_case(case);
                }
            }
            Event::Recap { .. } => self.write(),
            _ => {}
        }
    }
}

/// Several views of one run (the log and the JUnit report).
pub struct Tee(pub Vec<Box<dyn Reporter>>);

impl Reporter for Tee {
    fn event(&mut self, e: &Event) {
        for r in &mut self.0 {
            r.event(e);
        }
    }
}
